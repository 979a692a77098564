package logging_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/internal/authtest"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/middleware/logging"
	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/proto/greeterpb"
)

func records(t *testing.T, logs *greetertest.LogBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		if rec["msg"] == "rpc" {
			out = append(out, rec)
		}
	}
	return out
}

func TestOneRecordPerRPC(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	a, err := auth.New(context.Background(), authtest.Config(ed))
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	var logs greetertest.LogBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	traceID := trace.TraceID{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	tracer := middleware.FromFunc("tracer", func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: trace.SpanID{1}})
		return next(trace.ContextWithSpanContext(ctx, sc))
	})
	chain := standard.Chain(standard.Config{Logger: logger, Auth: a.Plugin(), Limiter: ratelimit.New(ratelimit.Options{})})
	cc := greetertest.Start(t, append(middleware.NewChain(tracer).ServerOptions(), chain.ServerOptions()...))
	c := greeterpb.NewGreeterClient(cc)
	token := ed.Token(t, "alice", "files:read files:delete")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token, "x-api-key", "eyJsecret-in-metadata")

	req := &greeterpb.HelloRequest{Name: "bob", Age: 7}
	resp, err := c.SayHello(authed, req)
	if err != nil {
		t.Fatalf("SayHello: %v", err)
	}
	if _, err := c.SayHello(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("SayHello without a token: got %v, want Unauthenticated", err)
	}
	s, err := c.DownloadFile(authed, &greeterpb.MetaData{Filename: "f", Limit: 100_000})
	if err != nil {
		t.Fatalf("DownloadFile: %v", err)
	}
	downloaded := 0
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		downloaded += proto.Size(m)
	}
	forged := "missing\n{\"msg\":\"rpc\",\"level\":\"ERROR\",\"forged\":true}"
	if _, err := c.DeleteFile(authed, &greeterpb.MetaData{Filename: forged}); status.Code(err) != codes.NotFound {
		t.Fatalf("DeleteFile: got %v, want NotFound", err)
	}

	recs := records(t, &logs)
	if len(recs) != 4 {
		t.Fatalf("rpc records: got %d, want 4:\n%s", len(recs), logs.String())
	}
	tests := []struct {
		field string
		rec   int
		want  any
	}{
		{"method", 0, "/Greeter/SayHello"},
		{"code", 0, "OK"},
		{"level", 0, "INFO"},
		{"bytes_in", 0, float64(proto.Size(req))},
		{"bytes_out", 0, float64(proto.Size(resp))},
		{"identity", 0, "jwt:" + authtest.Issuer + ":alice"}, // R1: the typed key
		{"trace_id", 0, traceID.String()},
		{"peer", 0, "bufconn"},
		{"code", 1, "Unauthenticated"},
		{"level", 1, "WARN"},
		{"error", 1, "missing bearer token"},
		{"identity", 1, nil},
		{"method", 2, "/Greeter/DownloadFile"},
		{"bytes_in", 2, float64(proto.Size(&greeterpb.MetaData{Filename: "f", Limit: 100_000}))},
		{"bytes_out", 2, float64(downloaded)},
		{"code", 3, "NotFound"},
		{"error", 3, "no such file: " + forged},
	}
	for _, tc := range tests {
		if got := recs[tc.rec][tc.field]; got != tc.want {
			t.Errorf("record %d field %s: got %v, want %v", tc.rec, tc.field, got, tc.want)
		}
	}
	if _, ok := recs[0]["duration"]; !ok {
		t.Errorf("record 0 has no duration")
	}
	for _, rec := range recs {
		if rec["forged"] != nil {
			t.Errorf("a client string forged a record: %v", rec)
		}
	}
	if strings.Contains(logs.String(), "eyJ") {
		t.Errorf("logs contain a token or metadata value:\n%s", logs.String())
	}
}

func TestDefaultLevel(t *testing.T) {
	tests := []struct {
		code codes.Code
		want slog.Level
	}{
		{codes.OK, slog.LevelInfo},
		{codes.NotFound, slog.LevelInfo},
		{codes.Canceled, slog.LevelInfo},
		{codes.Unauthenticated, slog.LevelWarn},
		{codes.PermissionDenied, slog.LevelWarn},
		{codes.ResourceExhausted, slog.LevelWarn},
		{codes.Internal, slog.LevelError},
		{codes.Unknown, slog.LevelError},
		{codes.DataLoss, slog.LevelError},
	}
	for _, tc := range tests {
		if got := logging.DefaultLevel(tc.code); got != tc.want {
			t.Errorf("DefaultLevel(%v): got %v, want %v", tc.code, got, tc.want)
		}
	}
}

// TestErrorAttributeIsCapped fails an RPC with a status message that
// echoes a 1 MiB name of control bytes, as a careless handler might
// (RELIABILITY.md R4): the record's error attribute keeps only the
// message's first 256 bytes and its length, so the whole record stays
// under 2 KiB with either handler. The plugin's interceptor is called
// directly: sending a 3 MiB trailer to a client would only slow the test.
func TestErrorAttributeIsCapped(t *testing.T) {
	name := "missing" + strings.Repeat("\x01", 1<<20)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var logs greetertest.LogBuffer
			h := slog.Handler(slog.NewJSONHandler(&logs, nil))
			if format == "text" {
				h = slog.NewTextHandler(&logs, nil)
			}
			p := logging.New(logging.Options{Logger: slog.New(h)})
			handler := func(context.Context, any) (any, error) {
				return nil, status.Error(codes.NotFound, "no such file: "+name)
			}
			info := &grpc.UnaryServerInfo{FullMethod: "/Greeter/DeleteFile"}
			_, err := p.Unary(t.Context(), &greeterpb.MetaData{Filename: name}, info, handler)
			if st := status.Convert(err); st.Code() != codes.NotFound || len(st.Message()) < 1<<20 {
				t.Fatalf("got %v with a %d-byte message, want the handler's NotFound, unchanged", st.Code(), len(st.Message()))
			}
			line := logs.String()
			if n := len(line); n >= 2<<10 {
				t.Fatalf("the record is %d bytes, want under 2 KiB: %.300s…", n, line)
			}
			if want := "…(1048597 bytes)"; !strings.Contains(line, want) {
				t.Errorf("the record does not give the message's length %q: %s", want, line)
			}
			if format == "json" {
				rec := records(t, &logs)[0]
				msg, _ := rec["error"].(string)
				if want := "no such file: missing\x01"; !strings.HasPrefix(msg, want) || len(msg) > logging.MaxErrorBytes+len("…(1048597 bytes)") {
					t.Errorf("error attribute is %d bytes starting %.40q, want the message's first %d bytes starting %q", len(msg), msg, logging.MaxErrorBytes, want)
				}
			}
		})
	}
}
