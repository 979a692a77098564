package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestTracingFromEndpointAlone starts greeterd with nothing but
// OTEL_EXPORTER_OTLP_ENDPOINT (no OTEL_TRACES_EXPORTER) and checks that a
// real Jaeger receives its spans; then, with OTEL_SDK_DISABLED=true added,
// that greeterd exports nothing. --trace-sample-ratio 1 records every root,
// so the count does not depend on chance; the CLI runs without any OTEL_*
// variable, so each hello is a new root on the server.
func TestTracingFromEndpointAlone(t *testing.T) {
	j := startJaeger(t)
	endpoint := "OTEL_EXPORTER_OTLP_ENDPOINT=" + j.otlpHTTP
	state := t.TempDir()

	hellos := func(srv string, n int) {
		t.Helper()
		for range n {
			res := bins.CLI(t, nil, "--addr", srv, "--state-dir", state, "hello", "--name", "env")
			if res.Code != 0 {
				t.Fatalf("greeter hello: exit %d\n%s", res.Code, res.Stderr)
			}
		}
	}

	// Disabled first: Jaeger must then hold no greeterd trace at all.
	off := bins.StartServer(t, []string{endpoint, "OTEL_SDK_DISABLED=true"}, "--state-dir", state, "--trace-sample-ratio", "1")
	hellos(off.Addr, 3)
	if err := off.Stop(30 * time.Second); err != nil {
		t.Fatalf("greeterd did not stop cleanly: %v", err)
	}
	if log := off.Log.String(); !strings.Contains(log, `"exporter":"none","because":"OTEL_SDK_DISABLED=true"`) {
		t.Errorf("greeterd with OTEL_SDK_DISABLED=true did not log exporter none because of it:\n%s", log)
	}

	on := bins.StartServer(t, []string{endpoint}, "--state-dir", state, "--trace-sample-ratio", "1")
	if log := on.Log.String(); !strings.Contains(log, `"exporter":"otlp","because":"OTEL_EXPORTER_OTLP_ENDPOINT"`) {
		t.Errorf("greeterd with only OTEL_EXPORTER_OTLP_ENDPOINT did not log exporter otlp because of it:\n%s", log)
	}
	// The disabled server's spans, had it made any, were flushed at its
	// SIGTERM, before this server started.
	if got := j.traces(t, "greeterd"); len(got) != 0 {
		t.Fatalf("Jaeger holds %d greeterd traces from the server with OTEL_SDK_DISABLED=true, want 0", len(got))
	}
	hellos(on.Addr, 4)
	// SIGTERM makes greeterd flush its spans before it exits.
	if err := on.Stop(30 * time.Second); err != nil {
		t.Fatalf("greeterd did not stop cleanly: %v", err)
	}
	var traces []jTrace
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		traces = j.traces(t, "greeterd")
		if len(traces) >= 4 || time.Now().After(deadline) {
			break
		}
	}
	hello := 0
	for _, tr := range traces {
		for _, s := range tr.Spans {
			if s.OperationName == "Greeter/SayHello" {
				hello++
			}
		}
	}
	if hello != 4 {
		t.Errorf("Jaeger holds %d greeterd SayHello spans in %d traces, want 4 (one per hello)", hello, len(traces))
	}
}
