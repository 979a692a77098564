package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greeter/greeter/e2e/e2etest"
	"github.com/greeter/greeter/internal/sysdeps"
)

// prometheusWait bounds every wait for Prometheus.
const prometheusWait = 60 * time.Second

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
