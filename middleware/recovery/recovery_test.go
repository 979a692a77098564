package recovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/authz"
	"github.com/greeter/greeter/middleware/internal/authtest"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/middleware/logging"
	"github.com/greeter/greeter/middleware/recovery"
	"github.com/greeter/greeter/proto/greeterpb"
)

var traceID = trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

// tracer stands in for the otelgrpc stats handler: it puts a valid span
// context into every RPC's context.
func tracer() middleware.Plugin {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	return middleware.FromFunc("tracer", func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
		return next(trace.ContextWithSpanContext(ctx, sc))
	})
}

// panicker panics (in the plugin itself or in a message hook) when the call
// carries "x-panic: plugin" or "x-panic: hook".
func panicker(name string) middleware.Plugin {
	return middleware.FromFunc(name, func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		md, _ := metadata.FromIncomingContext(ctx)
		for _, v := range md.Get("x-panic") {
			switch v {
			case name:
				panic(greetertest.PanicValue)
			case name + "-hook":
				call.OnRecv(func(context.Context, any) error { panic(greetertest.PanicValue) })
			case name + "-runtime":
				var m map[string]int
				m["boom"]++ // a runtime error: assignment to entry in nil map
			}
		}
		return next(ctx)
	})
}

func TestPanicsBecomeInternal(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	a, err := auth.New(context.Background(), authtest.Config(ed))
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	var logs greetertest.LogBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	var panics atomic.Int32
	chain := middleware.NewChain(
		tracer(),
		recovery.New(recovery.Options{Logger: logger, OnPanic: func(context.Context, string) { panics.Add(1) }}),
		panicker("early"), // before authentication (RELIABILITY P4)
		logging.New(logging.Options{Logger: logger}),
		a.Plugin(),
		authz.New(authz.Options{}),
		panicker("inner"),
	)
	cc := greetertest.Start(t, chain.ServerOptions())
	c := greeterpb.NewGreeterClient(cc)
	token := ed.Token(t, "alice", "files:read files:write")

	hello := func(ctx context.Context, name string) error {
		_, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: name})
		return err
	}
	upload := func(ctx context.Context, name string) error {
		s, err := c.UploadFile(ctx)
		if err != nil {
			return err
		}
		for range 3 {
			if err := s.Send(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: []byte("abc")}}); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
		}
		if err := s.Send(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_Metadata{Metadata: &greeterpb.MetaData{Filename: name}}}); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_, err = s.CloseAndRecv()
		return err
	}
	download := func(ctx context.Context, name string) error {
		s, err := c.DownloadFile(ctx, &greeterpb.MetaData{Filename: name, Limit: 3 * greetertest.ChunkSize})
		if err != nil {
			return err
		}
		for {
			if _, err := s.Recv(); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	tests := []struct {
		name      string
		rpc       func(context.Context, string) error
		arg       string
		panicAt   string // x-panic header
		wantInLog string
	}{
		{"unary handler", hello, greetertest.PanicName, "", "/Greeter/SayHello"},
		{"client-stream handler after 3 chunks", upload, greetertest.PanicName, "", "/Greeter/UploadFile"},
		{"server-stream handler after the first chunk", download, greetertest.PanicName, "", "/Greeter/DownloadFile"},
		{"unary plugin before auth", hello, "bob", "early", "/Greeter/SayHello"},
		{"stream plugin before auth", upload, "f", "early", "/Greeter/UploadFile"},
		{"unary plugin after auth", hello, "bob", "inner", "/Greeter/SayHello"},
		{"stream plugin after auth", download, "f", "inner", "/Greeter/DownloadFile"},
		{"stream message hook", upload, "f", "inner-hook", "/Greeter/UploadFile"},
		{"unary message hook", hello, "bob", "inner-hook", "/Greeter/SayHello"},
		{"runtime error", hello, "bob", "inner-runtime", "assignment to entry in nil map"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
			if tc.panicAt != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "x-panic", tc.panicAt)
			}
			err := tc.rpc(ctx, tc.arg)
			st := status.Convert(err)
			if st.Code() != codes.Internal || st.Message() != "internal error" {
				t.Errorf("got %v %q, want Internal %q", st.Code(), st.Message(), "internal error")
			}
			if len(st.Details()) != 0 {
				t.Errorf("status details: got %v, want none", st.Details())
			}
			if got, want := panics.Load(), int32(i+1); got != want {
				t.Errorf("recovered panics: got %d, want %d", got, want)
			}
			// The server keeps serving.
			plain, cancelPlain := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancelPlain()
			plain = metadata.AppendToOutgoingContext(plain, "authorization", "Bearer "+token)
			if err := hello(plain, "bob"); err != nil {
				t.Errorf("SayHello after the panic: got %v, want OK", err)
			}
			if !strings.Contains(logs.String(), tc.wantInLog) {
				t.Errorf("logs lack %q:\n%s", tc.wantInLog, logs.String())
			}
		})
	}

	// Every panic record has the method, the trace id and a stack; those
	// after authentication have the identity. No record holds the panic
	// value or a token.
	var records []map[string]any
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		if rec["msg"] == "panic recovered" {
			records = append(records, rec)
		}
	}
	if got, want := len(records), len(tests); got != want {
		t.Fatalf("panic records: got %d, want %d", got, want)
	}
	for i, rec := range records {
		if rec["level"] != "ERROR" || rec["method"] == "" || rec["trace_id"] != traceID.String() ||
			!strings.Contains(rec["stack"].(string), "goroutine") {
			t.Errorf("panic record %d: got %v, want level ERROR, method, trace_id %s and a stack", i, rec, traceID)
		}
		if tc := tests[i]; tc.panicAt != "early" && rec["identity"] != "jwt:"+authtest.Issuer+":alice" {
			t.Errorf("panic record %d (%s): got identity %v, want jwt:<issuer>:alice", i, tc.name, rec["identity"])
		}
	}
	for _, secret := range []string{greetertest.PanicValue, "eyJ"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
	// The logging plugin, inside recovery, still wrote a record for each
	// panic it saw unwinding. The two message hooks' panics do not unwind:
	// they are recovered where the hook runs and end the RPC with an error.
	if got, want := strings.Count(logs.String(), `"panic":true`), 6; got != want {
		t.Errorf("access records marked panic: got %d, want %d (all but the two early panics and the two hook panics)", got, want)
	}
}

// TestPanicValueNeverInStatus checks a minimal chain: go-grpc-middleware's
// recovery without a handler would send the panic value and the stack.
func TestPanicValueNeverInStatus(t *testing.T) {
	var logs greetertest.LogBuffer
	chain := middleware.NewChain(recovery.New(recovery.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	cc := greetertest.Start(t, chain.ServerOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := greeterpb.NewGreeterClient(cc).SayHello(ctx, &greeterpb.HelloRequest{Name: greetertest.PanicName})
	for _, leak := range []string{greetertest.PanicValue, "goroutine", ".go:"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("client error %q contains %q", err, leak)
		}
	}
	if strings.Contains(logs.String(), "identity=") {
		t.Errorf("panic record without authentication names an identity:\n%s", logs.String())
	}
}
