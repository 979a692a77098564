package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const jaegerVersion = "v1.42.0"

// jaegerBinary returns Jaeger all-in-one, installing it into the
// repository's .bin (git-ignored) on first use, as scripts/jaeger.sh does.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", ".bin")
	path := filepath.Join(bin, "all-in-one")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	t.Logf("installing jaeger all-in-one %s into %s (one time, a few minutes)", jaegerVersion, bin)
	cmd := exec.Command("go", "install", "github.com/jaegertracing/jaeger/cmd/all-in-one@"+jaegerVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing jaeger: %v\n%s", err, out)
	}
	return path
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// jaeger is a running all-in-one with in-memory storage on loopback.
type jaeger struct {
	otlpHTTP string // OTLP/HTTP endpoint URL
	query    string // query API base URL
}

func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := jaegerBinary(t)
	otlpGRPC, otlpHTTP, query, admin := freePort(t), freePort(t), freePort(t), freePort(t)
	cmd := exec.Command(bin,
		"--collector.otlp.enabled=true",
		fmt.Sprintf("--collector.otlp.grpc.host-port=127.0.0.1:%d", otlpGRPC),
		fmt.Sprintf("--collector.otlp.http.host-port=127.0.0.1:%d", otlpHTTP),
		fmt.Sprintf("--query.http-server.host-port=127.0.0.1:%d", query),
		"--query.grpc-server.host-port=127.0.0.1:0",
		fmt.Sprintf("--admin.http.host-port=127.0.0.1:%d", admin),
		"--collector.grpc-server.host-port=127.0.0.1:0",
		"--collector.http-server.host-port=127.0.0.1:0",
		"--collector.zipkin.host-port=",
		"--http-server.host-port=127.0.0.1:0",
		"--processor.jaeger-binary.server-host-port=127.0.0.1:0",
		"--processor.jaeger-compact.server-host-port=127.0.0.1:0",
		"--processor.zipkin-compact.server-host-port=127.0.0.1:0",
	)
	cmd.Env = append(os.Environ(), "SPAN_STORAGE_TYPE=memory")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	j := &jaeger{otlpHTTP: fmt.Sprintf("http://127.0.0.1:%d", otlpHTTP), query: fmt.Sprintf("http://127.0.0.1:%d", query)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", admin))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger did not become healthy within 60s\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Jaeger's query API, the parts the test reads.
type jTrace struct {
	TraceID   string              `json:"traceID"`
	Spans     []jSpan             `json:"spans"`
	Processes map[string]jProcess `json:"processes"`
}

type jSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	Logs []json.RawMessage `json:"logs"`
}

type jProcess struct {
	ServiceName string `json:"serviceName"`
}

func (s jSpan) tag(key string) (any, bool) {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return nil, false
}

func (j *jaeger) traces(t *testing.T, service string) []jTrace {
	t.Helper()
	resp, err := http.Get(j.query + "/api/traces?limit=100&service=" + service)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []jTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Data
}

// TestTracesReachJaeger runs hello, upload and download with the CLI against
// a dev-mode greeterd, both exporting OTLP to a real Jaeger, and checks
// through Jaeger's query API that each operation is one trace holding the
// CLI's client span and greeterd's server span, with the file attributes,
// the storage commit child span, and no per-chunk events.
func TestTracesReachJaeger(t *testing.T) {
	j := startJaeger(t)
	otel := []string{
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + j.otlpHTTP,
		"OTEL_BSP_SCHEDULE_DELAY=100",
	}
	state := t.TempDir()
	srv := bins.StartServer(t, otel, "--state-dir", state)
	work := t.TempDir()
	src := filepath.Join(work, "traced.bin")
	data := writeRandom(t, src, 5<<20)

	run := func(args ...string) {
		t.Helper()
		res := bins.CLI(t, otel, append([]string{"--addr", srv.Addr, "--state-dir", state}, args...)...)
		if res.Code != 0 {
			t.Fatalf("greeter %v: exit %d\n%s", args, res.Code, res.Stderr)
		}
	}
	run("hello", "--name", "tracer")
	run("upload", src, "--as", "traced.bin")
	run("download", "traced.bin", "-o", filepath.Join(work, "back.bin"))
	// SIGTERM makes greeterd flush its spans before it exits.
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Fatalf("greeterd did not stop cleanly: %v", err)
	}

	want := map[string]bool{"Greeter/SayHello": false, "Greeter/UploadFile": false, "Greeter/DownloadFile": false}
	var traces []jTrace
	deadline := time.Now().Add(30 * time.Second)
	for {
		traces = j.traces(t, "greeterd")
		if len(traces) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, tr := range traces {
		services := map[string]bool{}
		// A CLI command is one trace, which may hold more than one of
		// greeterd's server spans (an upload asks for its state first);
		// Jaeger lists a trace's spans in no set order.
		var servers []*jSpan
		var names []string
		for i, s := range tr.Spans {
			services[tr.Processes[s.ProcessID].ServiceName] = true
			names = append(names, s.OperationName)
			if kind, _ := s.tag("span.kind"); kind == "server" && tr.Processes[s.ProcessID].ServiceName == "greeterd" {
				servers = append(servers, &tr.Spans[i])
			}
			if len(s.Logs) > 2 {
				t.Errorf("span %s has %d events; transfers must not log per chunk", s.OperationName, len(s.Logs))
			}
		}
		if len(servers) == 0 {
			t.Errorf("trace %s has no greeterd server span: %v", tr.TraceID, names)
			continue
		}
		for _, server := range servers {
			op := server.OperationName
			if _, ok := want[op]; !ok {
				continue
			}
			if want[op] {
				t.Errorf("%s appears in more than one trace or twice in trace %s: %v", op, tr.TraceID, names)
			}
			want[op] = true
			if !services["greeter"] || !services["greeterd"] {
				t.Errorf("trace of %s holds spans of %v; want the CLI's (greeter) and the server's (greeterd) in one trace", op, services)
			}
			if op == "Greeter/UploadFile" {
				for key, value := range map[string]any{"greeter.object": "traced.bin", "greeter.owner": "jwt:greeterd:dev", "greeter.bytes": float64(len(data)), "greeter.sha256": sum(data), "greeter.outcome": "ok"} {
					if got, ok := server.tag(key); !ok || got != value {
						t.Errorf("upload span attribute %s = %v, want %v", key, got, value)
					}
				}
				if !strings.Contains(strings.Join(names, ","), "storage.commit") {
					t.Errorf("upload trace has spans %v; want a storage.commit child span", names)
				}
			}
		}
	}
	for op, seen := range want {
		if !seen {
			t.Errorf("no trace in Jaeger for %s (found %d traces)", op, len(traces))
		}
	}
}
