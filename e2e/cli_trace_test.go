package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLICommandIsOneTrace runs one "greeter upload -j 2" of two files with
// the CLI and a dev greeterd exporting OTLP to a real Jaeger, and checks
// through Jaeger's query API that the command is exactly one trace: the root
// span "greeter upload" with the file count and outcome, one child span per
// file, the CLI's RPC spans (QueryUpload, UploadFile) under the file spans,
// and greeterd's server spans joined to it.
func TestCLICommandIsOneTrace(t *testing.T) {
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
	var files []string
	for _, name := range []string{"one.bin", "two.bin"} {
		p := filepath.Join(work, name)
		writeRandom(t, p, 1<<20)
		files = append(files, p)
	}
	res := bins.CLI(t, otel, append([]string{"--addr", srv.Addr, "--state-dir", state, "upload", "-j", "2"}, files...)...)
	if res.Code != 0 {
		t.Fatalf("greeter upload: exit %d\n%s", res.Code, res.Stderr)
	}
	if err := srv.Stop(30 * time.Second); err != nil { // flushes greeterd's spans
		t.Fatalf("greeterd did not stop cleanly: %v", err)
	}

	var traces []jTrace
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		traces = j.traces(t, "greeter")
		if len(traces) > 0 && hasServerSpans(traces[0], 2) || time.Now().After(deadline) {
			break
		}
	}
	if len(traces) != 1 {
		t.Fatalf("the CLI's spans are in %d traces, want the command's one", len(traces))
	}
	tr := traces[0]
	byID := map[string]jSpan{}
	var root jSpan
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
		if s.OperationName == "greeter upload" {
			root = s
		}
	}
	parent := func(s jSpan) string {
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" {
				return r.SpanID
			}
		}
		return ""
	}
	if root.SpanID == "" || parent(root) != "" {
		t.Fatalf("no parentless span \"greeter upload\" in the trace: %v", opNames(tr))
	}
	for key, want := range map[string]any{"greeter.files": float64(2), "greeter.failed": float64(0), "greeter.outcome": "ok"} {
		if got, _ := root.tag(key); got != want {
			t.Errorf("root span %s = %v, want %v", key, got, want)
		}
	}
	fileSpans, rpcs, server := 0, map[string]int{}, 0
	for _, s := range tr.Spans {
		service := tr.Processes[s.ProcessID].ServiceName
		kind, _ := s.tag("span.kind")
		switch {
		case s.OperationName == "greeter upload file":
			fileSpans++
			if parent(s) != root.SpanID {
				t.Errorf("file span %v is not a child of the command's span", s.Tags)
			}
		case service == "greeter" && kind == "client":
			rpcs[s.OperationName[strings.LastIndex(s.OperationName, "/")+1:]]++
			if p := byID[parent(s)]; p.OperationName != "greeter upload file" {
				t.Errorf("RPC span %s has parent %q, want a file span", s.OperationName, p.OperationName)
			}
		case service == "greeterd" && kind == "server":
			server++
		}
	}
	if fileSpans != 2 || rpcs["UploadFile"] != 2 || rpcs["QueryUpload"] == 0 {
		t.Errorf("%d file spans and RPC spans %v; want 2 file spans, 2 UploadFile and the QueryUpload calls\nspans: %v", fileSpans, rpcs, opNames(tr))
	}
	if server < 2 {
		t.Errorf("%d greeterd server spans in the command's trace, want those of both uploads\nspans: %v", server, opNames(tr))
	}
}

// hasServerSpans reports whether tr holds at least n greeterd spans.
func hasServerSpans(tr jTrace, n int) bool {
	for _, s := range tr.Spans {
		if tr.Processes[s.ProcessID].ServiceName == "greeterd" {
			n--
		}
	}
	return n <= 0
}

func opNames(tr jTrace) []string {
	var names []string
	for _, s := range tr.Spans {
		names = append(names, tr.Processes[s.ProcessID].ServiceName+":"+s.OperationName)
	}
	return names
}
