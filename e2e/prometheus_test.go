package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/e2e/e2etest"
	"github.com/greeter/greeter/proto/greeterpb"
)

// promWindow replaces Grafana's interval variables ($__rate_interval and
// friends) in the dashboard's queries. Prometheus scrapes every second, and
// the whole test fits in it.
const promWindow = "5m"

// TestPrometheusDashboardAndAlerts proves docs/grafana-dashboard.json and
// deploy/prometheus/greeter-alerts.yml against a real Prometheus (Debian's
// prometheus package) scraping a real greeterd: after hellos, uploads, a
// download, a bad token, a rate-limited burst and a quota refusal, every
// query of every dashboard panel (and the job variable's label_values)
// must return at least one series with a number and no error, every metric the
// dashboard and the rules name must be one greeterd exports, and every
// alerting rule must evaluate without error.
func TestPrometheusDashboardAndAlerts(t *testing.T) {
	root := repoRoot()
	rulesFile := filepath.Join(root, "deploy", "prometheus", "greeter-alerts.yml")
	state := t.TempDir()
	srv := bins.StartServer(t, nil,
		"--state-dir", state, "--data-dir", t.TempDir(),
		"--metrics-listen", "127.0.0.1:0",
		"--traces-exporter", "stdout", // tracing on, so the dropped-spans counter exists
		"--rate-unary", "5", "--rate-unary-burst", "10",
		"--quota-bytes", "1MiB")
	metrics := metricsAddr(t, srv)
	prom := startPrometheus(t, metrics, rulesFile)
	prom.waitFor(t, "Prometheus to scrape greeterd (up == 1)", `up{job="greeterd"} == 1`, 1)

	// Traffic through the real CLI.
	work := t.TempDir()
	cli := func(want int, args ...string) e2etest.Result {
		t.Helper()
		res := bins.CLI(t, nil, append([]string{"--addr", srv.Addr, "--state-dir", state}, args...)...)
		if res.Code != want {
			t.Fatalf("greeter %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.Code, want, res.Stdout, res.Stderr)
		}
		return res
	}
	file := func(name string, n int) string {
		path := filepath.Join(work, name)
		writeRandom(t, path, n)
		return path
	}
	cli(0, "hello", "--name", "Ada")
	cli(0, "hello", "--name", "Grace")
	cli(0, "upload", file("small.txt", 4<<10))
	cli(0, "upload", file("big.bin", 600<<10))
	cli(0, "download", "big.bin", "-o", filepath.Join(work, "big.back"))
	cli(0, "ls")
	cli(0, "usage")
	cli(3, "stat", "missing.txt")                 // NotFound (exit 3)
	cli(4, "--token", "not-a-token", "hello")     // a failed authentication
	cli(8, "upload", file("second.bin", 600<<10)) // over the 1 MiB quota
	rejected := burst(t, srv.Addr, state, 40)     // past --rate-unary through the generated client
	t.Logf("the burst of 40 hellos had %d rejected", rejected)

	// Prometheus must have scraped what greeterd counts now.
	expo := scrape(t, metrics)
	for _, name := range []string{
		"rpc_server_call_duration_seconds_count",
		"greeter_transfer_bytes_total",
		"greeter_auth_failures_total",
		"greeter_ratelimit_rejections_total",
		"greeter_quota_rejections_total",
	} {
		want := metricValue(expo, name, "")
		if want == 0 {
			t.Errorf("greeterd's %s is 0 after the traffic; the test's traffic should have moved it", name)
			continue
		}
		prom.waitFor(t, fmt.Sprintf("Prometheus to see %s = %v", name, want), fmt.Sprintf(`sum(%s{job="greeterd"})`, name), want)
	}
	// Two samples of every series, so that rate() has something to work on.
	prom.waitForTwoSamples(t, `{job="greeterd"}[`+promWindow+`]`)
	prom.waitFor(t, "storage serving", `greeter_storage_serving{job="greeterd"}`, 1)

	exported := exportedNames(expo)
	exported["up"] = true // added by Prometheus to every target

	t.Run("dashboard", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(root, "docs", "grafana-dashboard.json"))
		if err != nil {
			t.Fatal(err)
		}
		var dash dashboard
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatalf("docs/grafana-dashboard.json: %v", err)
		}
		vars := map[string]string{
			"__rate_interval": promWindow, "__interval": promWindow, "interval": promWindow,
			"__range": promWindow, "__range_s": "300",
		}
		for _, v := range dash.Templating.List {
			switch v.Type {
			case "datasource":
			case "query":
				vars[v.Name] = prom.labelValuesVar(t, v.Name, v.queryString(t), "greeterd")
			default:
				t.Errorf("dashboard variable %s has type %q, which this test does not know how to fill in", v.Name, v.Type)
			}
		}
		panels := dash.allPanels()
		if len(panels) == 0 {
			t.Fatal("the dashboard has no panels")
		}
		for _, p := range panels {
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				expr := expandVars(tg.Expr, vars)
				where := fmt.Sprintf("panel %q query %s: %s", p.Title, tg.RefID, expr)
				if strings.Contains(expr, "$") {
					t.Errorf("%s: a template variable is left after substitution", where)
					continue
				}
				checkNames(t, where, expr, exported)
				prom.mustHaveSeries(t, where, expr)
			}
		}
	})

	t.Run("alerting rules", func(t *testing.T) {
		raw, err := os.ReadFile(rulesFile)
		if err != nil {
			t.Fatal(err)
		}
		want := len(regexp.MustCompile(`(?m)^\s*- alert: `).FindAll(raw, -1))
		var rules []promRule
		deadline := time.Now().Add(prometheusWait)
		for {
			rules = prom.rules(t)
			evaluated := 0
			for _, r := range rules {
				if !r.LastEvaluation.IsZero() && r.LastEvaluation.Year() > 1 {
					evaluated++
				}
			}
			if len(rules) == want && evaluated == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus loaded %d rules, %d evaluated, within %v; want all %d of %s\n%s", len(rules), evaluated, prometheusWait, want, rulesFile, prom.log.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, r := range rules {
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
			}
			checkNames(t, "rule "+r.Name, r.Query, exported)
		}
	})
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// burst sends n hellos as fast as it can through the generated client with
// the dev token, which has no retries, and returns how many the server
// refused with ResourceExhausted. Any other failure fails the test.
func burst(t *testing.T, addr, state string, n int) int {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(state, "token"))
	if err != nil {
		t.Fatal(err)
	}
	c := greeterpb.NewGreeterClient(faultDial(t, addr, filepath.Join(state, "ca.pem"), strings.TrimSpace(string(token))))
	ctx, cancel := context.WithTimeout(t.Context(), prometheusWait)
	defer cancel()
	rejected := 0
	for range n {
		_, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: "burst"})
		switch status.Code(err) {
		case codes.OK:
		case codes.ResourceExhausted:
			rejected++
		default:
			t.Fatalf("hello in a burst: %v", err)
		}
	}
	if rejected == 0 {
		t.Fatalf("none of %d hellos in a burst was rate limited (--rate-unary 5, burst 10)", n)
	}
	return rejected
}

// TestPromQLMetricNames pins metricNames, which the Prometheus test relies
// on to find metrics greeterd does not export.
func TestPromQLMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le, rpc_method) (rate(rpc_server_call_duration_seconds_bucket{job=~"x",rpc_method!~"Greeter/(A|B)"}[5m])))`: {"rpc_server_call_duration_seconds_bucket"},
		`(sum(rate(a_total{code=~"UNKNOWN|INTERNAL"}[1m])) or vector(0)) / sum(rate(a_total[1m]))`:                                                    {"a_total"},
		`min by (job, instance, cert) (greeter_tls_certificate_not_after_seconds) - time() < 14 * 86400`:                                              {"greeter_tls_certificate_not_after_seconds"},
		`greeter_storage_serving == 0`:                                    {"greeter_storage_serving"},
		`(x_total > 1) and on (job) group_left y:recorded > 1e3 unless z`: {"x_total", "y:recorded", "z"},
		`process_resident_memory_bytes{job=~"$job"}`:                      {"process_resident_memory_bytes"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
	if got := expandVars(`rate(x{job=~"$job",a="${job}",b="[[job]]"}[$__rate_interval]) $unknown`, map[string]string{"job": "j", "__rate_interval": "5m"}); got != `rate(x{job=~"j",a="j",b="j"}[5m]) $unknown` {
		t.Errorf("expandVars = %s", got)
	}
}
