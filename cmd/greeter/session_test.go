package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

// serveFlaky serves the real service on loopback, failing the first
// UploadFile stream with Unavailable so that the client retries.
func serveFlaky(t *testing.T) string {
	t.Helper()
	store, err := diskstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var uploads atomic.Int32
	srv := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod == pb.Greeter_UploadFile_FullMethodName && uploads.Add(1) == 1 {
			return status.Error(codes.Unavailable, "first upload refused")
		}
		return handler(srv, ss)
	}))
	service.New(store, service.Options{DefaultOwner: "cli"}).Register(srv)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
		store.Close()
	})
	return lis.Addr().String()
}

// runTraced runs the CLI with an in-memory span exporter and returns the
// exit code and the spans it ended.
func runTraced(t *testing.T, args ...string) (int, string, tracetest.SpanStubs) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }, spanExporter: keepSpans{exp}}
	code := a.run(ctx, args)
	return code, errOut.String(), exp.GetSpans()
}

// keepSpans keeps the spans when the CLI shuts tracing down (the in-memory
// exporter forgets them then).
type keepSpans struct{ *tracetest.InMemoryExporter }

func (keepSpans) Shutdown(context.Context) error { return nil }

func attr(s tracetest.SpanStub, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// TestOneTracePerCommand: an upload of three files with -j 2 is one trace: a
// root span "greeter upload" with the file count and outcome, one child span
// per file, and every RPC (the refused first UploadFile, its retry and the
// QueryUpload calls of the resumes) a child of a file's span.
func TestOneTracePerCommand(t *testing.T) {
	addr := serveFlaky(t)
	dir := t.TempDir()
	var files []string
	for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte(name), 1000), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	code, stderr, spans := runTraced(t, append([]string{"--plaintext", "--addr", addr, "upload", "-j", "2"}, files...)...)
	if code != exitOK {
		t.Fatalf("upload: exit %d, stderr %q", code, stderr)
	}
	var root *tracetest.SpanStub
	for i, s := range spans {
		if s.Name == "greeter upload" {
			root = &spans[i]
		}
	}
	if root == nil {
		t.Fatalf("no root span \"greeter upload\" among %d spans", len(spans))
	}
	if root.Parent.IsValid() {
		t.Errorf("the command's span has a parent %v; want it to be the root", root.Parent.SpanID())
	}
	if got := attr(*root, attrFiles).AsInt64(); got != 3 {
		t.Errorf("root span greeter.files = %d, want 3", got)
	}
	if got := attr(*root, "greeter.outcome").AsString(); got != "ok" || root.Status.Code != otelcodes.Ok {
		t.Errorf("root span outcome %q status %v, want ok", got, root.Status)
	}
	fileSpans := map[string]string{} // span id → object
	for _, s := range spans {
		if s.SpanContext.TraceID() != root.SpanContext.TraceID() {
			t.Errorf("span %q is in trace %s, want every span in the command's trace %s", s.Name, s.SpanContext.TraceID(), root.SpanContext.TraceID())
		}
		if s.Name == "greeter upload file" {
			if s.Parent.SpanID() != root.SpanContext.SpanID() {
				t.Errorf("file span of %s is not a child of the command's span", attr(s, "greeter.object").AsString())
			}
			fileSpans[s.SpanContext.SpanID().String()] = attr(s, "greeter.object").AsString()
		}
	}
	if len(fileSpans) != 3 {
		t.Fatalf("%d file spans, want one per file (3)", len(fileSpans))
	}
	rpcs := map[string]int{}
	for _, s := range spans {
		if s.Name == "greeter upload" || s.Name == "greeter upload file" {
			continue
		}
		method := s.Name[strings.LastIndex(s.Name, "/")+1:]
		rpcs[method]++
		if _, ok := fileSpans[s.Parent.SpanID().String()]; !ok {
			t.Errorf("RPC span %q is not a child of a file's span", s.Name)
		}
	}
	// Three uploads plus the refused one.
	if rpcs["UploadFile"] != 4 || rpcs["QueryUpload"] == 0 {
		t.Errorf("RPC spans %v; want 4 UploadFile (one refused and retried) and the QueryUpload calls", rpcs)
	}
}

// TestTraceOfAFailedCommand: the command's span carries the outcome of the
// failure and an error status.
func TestTraceOfAFailedCommand(t *testing.T) {
	addr := serve(t)
	code, _, spans := runTraced(t, "--plaintext", "--addr", addr, "stat", "missing")
	if code != exitNotFound {
		t.Fatalf("stat missing: exit %d, want %d", code, exitNotFound)
	}
	for _, s := range spans {
		if s.Name == "greeter stat" {
			if got := attr(s, "greeter.outcome").AsString(); got != "not_found" || s.Status.Code != otelcodes.Error {
				t.Fatalf("greeter stat span outcome %q status %v; want not_found and an error status", got, s.Status)
			}
			return
		}
	}
	t.Fatalf("no span \"greeter stat\" among %d", len(spans))
}
