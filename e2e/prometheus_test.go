package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/e2e/e2etest"
	"github.com/greeter/greeter/internal/sysdeps"
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

// prometheusWait bounds every wait for Prometheus.
const prometheusWait = 60 * time.Second

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

// prometheus is a running Prometheus on loopback.
type prometheus struct {
	base string // http://127.0.0.1:PORT
	log  *e2etest.SyncBuffer
}

// startPrometheus runs Debian's prometheus with a generated configuration
// that scrapes greeterd's metrics address every second as job "greeterd"
// and evaluates rulesFile every second, storing into a temporary directory.
// It is stopped when the test ends.
func startPrometheus(t *testing.T, metricsAddr, rulesFile string) *prometheus {
	t.Helper()
	bin := sysdeps.LookPath(t, "prometheus", "prometheus") // Debian's prometheus 2.x
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	err := os.WriteFile(config, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: greeterd
    static_configs:
      - targets: [%q]
`, rulesFile, metricsAddr), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin,
		"--config.file", config,
		"--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", listen,
		"--log.level", "warn")
	p := &prometheus{base: "http://" + listen, log: &e2etest.SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(prometheusWait)
	for {
		resp, err := http.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited before it was ready:\n%s", p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus was not ready within %v:\n%s", prometheusWait, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promSample is one series of an instant query's vector result.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) float() float64 {
	str, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// query evaluates expr now and returns its vector (a scalar becomes one
// sample without labels), or the error Prometheus reported.
func (p *prometheus) query(t *testing.T, expr string) ([]promSample, error) {
	t.Helper()
	var body struct {
		Status    string          `json:"status"`
		Error     string          `json:"error"`
		ErrorType string          `json:"errorType"`
		Warnings  []string        `json:"warnings"`
		Data      json.RawMessage `json:"data"`
	}
	p.get(t, "/api/v1/query?"+url.Values{"query": {expr}}.Encode(), &body)
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", body.ErrorType, body.Error)
	}
	if len(body.Warnings) > 0 {
		return nil, fmt.Errorf("warnings: %v", body.Warnings)
	}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body.Data, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var v []promSample
		err := json.Unmarshal(data.Result, &v)
		return v, err
	case "scalar":
		var s promSample
		err := json.Unmarshal(data.Result, &s.Value)
		return []promSample{s}, err
	default:
		return nil, fmt.Errorf("result type %q, want an instant vector", data.ResultType)
	}
}

func (p *prometheus) get(t *testing.T, path string, into any) {
	t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: status %s, decoding: %v", path, resp.Status, err)
	}
}

// waitFor polls expr until it returns a single series whose value is want
// (any series at all when want is negative), for at most prometheusWait.
func (p *prometheus) waitFor(t *testing.T, what, expr string, want float64) {
	t.Helper()
	deadline := time.Now().Add(prometheusWait)
	for {
		v, err := p.query(t, expr)
		if err != nil {
			t.Fatalf("waiting for %s: %s: %v", what, expr, err)
		}
		if len(v) > 0 && (want < 0 || len(v) == 1 && v[0].float() == want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %s returns %v\nprometheus log:\n%s", prometheusWait, what, expr, v, p.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitForTwoSamples polls the range selector sel until every series it
// selects has at least two samples, for at most prometheusWait.
func (p *prometheus) waitForTwoSamples(t *testing.T, sel string) {
	t.Helper()
	deadline := time.Now().Add(prometheusWait)
	for {
		var body struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Values []json.RawMessage `json:"values"`
				} `json:"result"`
			} `json:"data"`
		}
		p.get(t, "/api/v1/query?"+url.Values{"query": {sel}}.Encode(), &body)
		if body.Status != "success" {
			t.Fatalf("%s: %s", sel, body.Error)
		}
		var short []string
		for _, r := range body.Data.Result {
			if len(r.Values) < 2 {
				short = append(short, r.Metric["__name__"])
			}
		}
		if len(body.Data.Result) > 0 && len(short) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for two samples of every series of %s; %d series, these have fewer: %v", prometheusWait, sel, len(body.Data.Result), short)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// mustHaveSeries fails unless expr evaluates without error to at least one
// series with a number. A NaN series alone would be an empty panel; some
// NaN series next to numbers are what a rate of a counter born during the
// window gives (a method called once: its series appears at 1 and never
// moves), not a fault of the query.
func (p *prometheus) mustHaveSeries(t *testing.T, where, expr string) {
	t.Helper()
	v, err := p.query(t, expr)
	switch {
	case err != nil:
		t.Errorf("%s: %v", where, err)
	case len(v) == 0:
		t.Errorf("%s: no series", where)
	case !slices.ContainsFunc(v, func(s promSample) bool { return !math.IsNaN(s.float()) }):
		t.Errorf("%s: every series is NaN: %v", where, v)
	}
}

// labelValuesVar fills in a dashboard variable defined by Grafana's
// label_values(METRIC, LABEL): it asks Prometheus for LABEL's values on
// METRIC, requires want among them, and returns want, as Grafana would
// substitute a single selected value.
func (p *prometheus) labelValuesVar(t *testing.T, name, query, want string) string {
	t.Helper()
	m := regexp.MustCompile(`^label_values\(\s*([^,]+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`).FindStringSubmatch(strings.TrimSpace(query))
	if m == nil {
		t.Errorf("dashboard variable %s: query %q is not label_values(METRIC, LABEL)", name, query)
		return want
	}
	var body struct {
		Status string   `json:"status"`
		Error  string   `json:"error"`
		Data   []string `json:"data"`
	}
	p.get(t, "/api/v1/label/"+m[2]+"/values?"+url.Values{"match[]": {m[1]}}.Encode(), &body)
	if body.Status != "success" || !slices.Contains(body.Data, want) {
		t.Errorf("dashboard variable %s: %s gives %v (%s %s), want %q among them", name, query, body.Data, body.Status, body.Error, want)
	}
	return want
}

// promRule is a rule as /api/v1/rules reports it.
type promRule struct {
	Name           string    `json:"name"`
	Query          string    `json:"query"`
	Health         string    `json:"health"`
	LastError      string    `json:"lastError"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

func (p *prometheus) rules(t *testing.T) []promRule {
	t.Helper()
	var body struct {
		Data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/rules", &body)
	var out []promRule
	for _, g := range body.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// The parts of a Grafana dashboard the test reads.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []dashVar `json:"list"`
	} `json:"templating"`
}

// dashVar is a dashboard (template) variable.
type dashVar struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Query json.RawMessage `json:"query"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // a collapsed row's panels
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// allPanels returns the panels, those inside rows included.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// queryString returns a variable's query, which newer Grafana versions
// store as {"query": "..."}.
func (v dashVar) queryString(t *testing.T) string {
	t.Helper()
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var obj struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &obj); err != nil {
		t.Errorf("dashboard variable %s: query %s: %v", v.Name, v.Query, err)
	}
	return obj.Query
}

// expandVars substitutes Grafana's $name, ${name} and [[name]] forms.
func expandVars(expr string, vars map[string]string) string {
	return regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`).ReplaceAllStringFunc(expr, func(m string) string {
		sub := regexp.MustCompile(`\w+`).FindString(strings.TrimLeft(m, "$[{"))
		if v, ok := vars[sub]; ok {
			return v
		}
		return m
	})
}

// exportedNames returns the metric names in a Prometheus exposition.
func exportedNames(exposition string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(exposition))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// metricNames returns the metric names a PromQL expression selects: the
// identifiers left after removing strings, label matchers, range and
// grouping clauses, function calls' names, keywords and numbers.
func metricNames(expr string) []string {
	for _, re := range []string{
		`"(?:[^"\\]|\\.)*"`, `'(?:[^'\\]|\\.)*'`, // strings
		`\{[^}]*\}`,  // label matchers
		`\[[^\]]*\]`, // ranges
		`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`,
		`\b[a-zA-Z_]\w*\s*\(`,                     // function names
		`(?:^|[^\w.])\d[\d.]*(?:[eE][+-]?\d+)?\b`, // numbers
	} {
		expr = regexp.MustCompile(re).ReplaceAllString(expr, " ")
	}
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true, "inf": true, "nan": true, "group_left": true, "group_right": true}
	var out []string
	for _, id := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`).FindAllString(expr, -1) {
		if !keywords[strings.ToLower(id)] && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// checkNames fails for every metric expr selects that greeterd does not
// export.
func checkNames(t *testing.T, where, expr string, exported map[string]bool) {
	t.Helper()
	names := metricNames(expr)
	if len(names) == 0 {
		t.Errorf("%s: selects no metric", where)
	}
	for _, n := range names {
		if !exported[n] {
			t.Errorf("%s: greeterd does not export %s", where, n)
		}
	}
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
