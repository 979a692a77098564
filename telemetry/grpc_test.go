package telemetry_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/telemetry"
)

// TestServerSpanStatus pins RELIABILITY O4: every RPC, failed or not, gets a
// server span with rpc.response.status_code, and the span status is Error
// only for server faults.
func TestServerSpanStatus(t *testing.T) {
	p, exp, _ := setupMemory(t, telemetry.Config{})
	ts := startServer(t, p, insecureCreds)
	client := pb.NewGreeterClient(ts.dial(t, nil, insecureCreds))

	tests := []struct {
		name       string
		code       codes.Code
		plainError bool
		wantStatus otelcodes.Code
		wantAttr   string
	}{
		{name: "OK", code: codes.OK, wantStatus: otelcodes.Unset, wantAttr: "OK"},
		{name: "InvalidArgument", code: codes.InvalidArgument, wantStatus: otelcodes.Unset, wantAttr: "INVALID_ARGUMENT"},
		{name: "Unauthenticated", code: codes.Unauthenticated, wantStatus: otelcodes.Unset, wantAttr: "UNAUTHENTICATED"},
		{name: "PermissionDenied", code: codes.PermissionDenied, wantStatus: otelcodes.Unset, wantAttr: "PERMISSION_DENIED"},
		{name: "NotFound", code: codes.NotFound, wantStatus: otelcodes.Unset, wantAttr: "NOT_FOUND"},
		{name: "AlreadyExists", code: codes.AlreadyExists, wantStatus: otelcodes.Unset, wantAttr: "ALREADY_EXISTS"},
		{name: "ResourceExhausted", code: codes.ResourceExhausted, wantStatus: otelcodes.Unset, wantAttr: "RESOURCE_EXHAUSTED"},
		{name: "FailedPrecondition", code: codes.FailedPrecondition, wantStatus: otelcodes.Unset, wantAttr: "FAILED_PRECONDITION"},
		{name: "Canceled", code: codes.Canceled, wantStatus: otelcodes.Unset, wantAttr: "CANCELLED"},
		{name: "Internal", code: codes.Internal, wantStatus: otelcodes.Error, wantAttr: "INTERNAL"},
		{name: "Unknown", code: codes.Unknown, wantStatus: otelcodes.Error, wantAttr: "UNKNOWN"},
		{name: "DataLoss", code: codes.DataLoss, wantStatus: otelcodes.Error, wantAttr: "DATA_LOSS"},
		{name: "Unavailable", code: codes.Unavailable, wantStatus: otelcodes.Error, wantAttr: "UNAVAILABLE"},
		// otelgrpc v0.72.0 also counts these as server faults.
		{name: "Unimplemented", code: codes.Unimplemented, wantStatus: otelcodes.Error, wantAttr: "UNIMPLEMENTED"},
		{name: "DeadlineExceeded", code: codes.DeadlineExceeded, wantStatus: otelcodes.Error, wantAttr: "DEADLINE_EXCEEDED"},
		{name: "plain Go error", plainError: true, wantStatus: otelcodes.Error, wantAttr: "UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			exp.Reset()
			name := strconv.Itoa(int(tt.code))
			if tt.plainError {
				name = "plain"
			}
			_, err := client.SayHello(ctx, &pb.HelloRequest{Name: name})
			if tt.plainError {
				if got := status.Code(err); got != codes.Unknown {
					t.Fatalf("SayHello: got code %v, want Unknown", got)
				}
			} else if got := status.Code(err); got != tt.code {
				t.Fatalf("SayHello: got code %v, want %v", got, tt.code)
			}
			<-ts.seen
			ts.waitEnd(t, ctx)

			span := oneServerSpan(t, ctx, p, exp)
			if span.Status.Code != tt.wantStatus {
				t.Errorf("span status: got %v, want %v", span.Status.Code, tt.wantStatus)
			}
			if got, _ := attrValue(span.Attributes, "rpc.response.status_code"); got != tt.wantAttr {
				t.Errorf("rpc.response.status_code: got %q, want %q", got, tt.wantAttr)
			}
			if got, _ := attrValue(span.Attributes, "rpc.method"); got != "Greeter/SayHello" {
				t.Errorf("rpc.method: got %q, want %q", got, "Greeter/SayHello")
			}
		})
	}
}

// TestRejectedByInterceptor pins RELIABILITY O4 for interceptors: an RPC
// that an interceptor rejects before the handler runs still has a server
// span with its status code, not marked Error, and without the token.
func TestRejectedByInterceptor(t *testing.T) {
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.Zm9yZ2Vk"
	ctx := testContext(t)
	p, exp, _ := setupMemory(t, telemetry.Config{})
	reject := func(ctx context.Context, _ any, _ *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
		return nil, status.Error(codes.Unauthenticated, "invalid token")
	}
	ts := startServerWith(t, p, insecureCreds, []grpc.ServerOption{grpc.UnaryInterceptor(reject)})
	client := pb.NewGreeterClient(ts.dial(t, nil, insecureCreds))
	callCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	if _, err := client.SayHello(callCtx, &pb.HelloRequest{Name: "OK"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("SayHello: got %v, want Unauthenticated", err)
	}
	ts.waitEnd(t, ctx)
	select {
	case <-ts.seen:
		t.Fatalf("handler ran, want the interceptor to reject first")
	default:
	}
	span := oneServerSpan(t, ctx, p, exp)
	if span.Status.Code != otelcodes.Unset {
		t.Errorf("span status: got %v, want Unset", span.Status.Code)
	}
	if got, _ := attrValue(span.Attributes, "rpc.response.status_code"); got != "UNAUTHENTICATED" {
		t.Errorf("rpc.response.status_code: got %q, want UNAUTHENTICATED", got)
	}
	if text := spanText(span); strings.Contains(text, token) {
		t.Errorf("span contains the token:\n%s", text)
	}
}

// spanText gathers every string a span exports: name, status, attributes,
// events, links and resource.
func spanText(s tracetest.SpanStub) string {
	var b strings.Builder
	add := func(attrs []attribute.KeyValue) {
		for _, kv := range attrs {
			b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
	}
	b.WriteString(s.Name + "\n" + s.Status.Description + "\n")
	add(s.Attributes)
	for _, e := range s.Events {
		b.WriteString(e.Name + "\n")
		add(e.Attributes)
	}
	for _, l := range s.Links {
		add(l.Attributes)
	}
	if s.Resource != nil {
		add(s.Resource.Attributes())
	}
	return b.String()
}

// TestNoSecretsOrMessageEvents pins RELIABILITY O2 and O3: the bearer token
// and file bytes reach no span on either side, and streams of 100 messages
// record no per-message events.
func TestNoSecretsOrMessageEvents(t *testing.T) {
	const token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA"
	const fileMarker = "FILE-BYTES-MUST-NOT-LEAK"

	p, exp, _ := setupMemory(t, telemetry.Config{})
	ts := startServer(t, p, insecureCreds)
	client := pb.NewGreeterClient(ts.dial(t, p, insecureCreds))
	ctx := metadata.AppendToOutgoingContext(testContext(t),
		"authorization", "Bearer "+token, "x-api-key", token)

	if _, err := client.SayHello(ctx, &pb.HelloRequest{Name: "OK"}); err != nil {
		t.Fatalf("SayHello: %v", err)
	}
	<-ts.seen
	ts.waitEnd(t, ctx)

	up, err := client.UploadFile(ctx)
	if err != nil {
		t.Fatalf("UploadFile: %v", err)
	}
	if err := up.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: &pb.MetaData{Filename: "notes.txt"}}}); err != nil {
		t.Fatalf("Send metadata: %v", err)
	}
	for range 99 {
		if err := up.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: []byte(fileMarker)}}); err != nil {
			t.Fatalf("Send chunk: %v", err)
		}
	}
	if _, err := up.CloseAndRecv(); err != nil {
		t.Fatalf("CloseAndRecv: %v", err)
	}
	ts.waitEnd(t, ctx)

	down, err := client.DownloadFile(ctx, &pb.MetaData{Filename: "notes.txt"})
	if err != nil {
		t.Fatalf("DownloadFile: %v", err)
	}
	chunks := 0
	for {
		_, err := down.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		chunks++
	}
	if chunks != 100 {
		t.Fatalf("download chunks: got %d, want 100", chunks)
	}
	ts.waitEnd(t, ctx)

	for _, kind := range []trace.SpanKind{trace.SpanKindServer, trace.SpanKindClient} {
		spans := spansOfKind(t, ctx, p, exp, kind)
		if len(spans) != 3 {
			t.Fatalf("%v spans: got %d, want 3", kind, len(spans))
		}
		for _, s := range spans {
			if len(s.Events) != 0 {
				t.Errorf("%v span %q: got %d events, want 0", kind, s.Name, len(s.Events))
			}
			text := spanText(s)
			for _, secret := range []string{token, "eyJ", "Bearer", "authorization", "x-api-key", fileMarker} {
				if strings.Contains(text, secret) {
					t.Errorf("%v span %q contains %q:\n%s", kind, s.Name, secret, text)
				}
			}
		}
	}
}
