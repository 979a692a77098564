package telemetry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/telemetry"
)

// observation is what a handler saw in its context.
type observation struct {
	span    trace.SpanContext
	baggage string
}

// fakeGreeter answers SayHello with the status code named by the request's
// name ("" or "OK" for success, "plain" for a non-status error), consumes
// uploads and sends 100-chunk downloads. It reports what each SayHello saw.
type fakeGreeter struct {
	pb.UnimplementedGreeterServer
	seen chan observation
}

func (f *fakeGreeter) SayHello(ctx context.Context, req *pb.HelloRequest) (*pb.StringResponse, error) {
	f.seen <- observation{
		span:    trace.SpanContextFromContext(ctx),
		baggage: baggage.FromContext(ctx).Member("tenant").Value(),
	}
	switch req.GetName() {
	case "", "OK":
		return &pb.StringResponse{Message: "hello"}, nil
	case "plain":
		return nil, errors.New("plain error")
	}
	n, err := strconv.Atoi(req.GetName())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "want a status code number")
	}
	return nil, status.Error(codes.Code(n), "failed on purpose")
}

func (f *fakeGreeter) UploadFile(stream grpc.ClientStreamingServer[pb.UploadFileRequest, pb.StringResponse]) error {
	var n int64
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&pb.StringResponse{Size: n})
		}
		if err != nil {
			return err
		}
		n += int64(len(msg.GetChunkData()))
	}
}

func (f *fakeGreeter) DownloadFile(_ *pb.MetaData, stream grpc.ServerStreamingServer[pb.FileResponse]) error {
	chunk := make([]byte, 1024)
	for range 100 {
		if err := stream.Send(&pb.FileResponse{ChunkData: chunk}); err != nil {
			return err
		}
	}
	return nil
}

// endSignal passes stats to the handler under test and then reports each
// server-side End, so a test knows the server span has ended without
// sleeping.
type endSignal struct {
	stats.Handler
	ends chan struct{}
}

func (e endSignal) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	e.Handler.HandleRPC(ctx, rs)
	if _, ok := rs.(*stats.End); ok {
		e.ends <- struct{}{}
	}
}

// testServer is a Greeter over bufconn whose stats handler is
// telemetry.ServerHandler.
type testServer struct {
	lis  *bufconn.Listener
	ends chan struct{}
	seen chan observation
}

func startServer(t *testing.T, p *telemetry.Providers, creds credentials.TransportCredentials, opts ...telemetry.HandlerOption) *testServer {
	t.Helper()
	return startServerWith(t, p, creds, nil, opts...)
}

// startServerWith is startServer with extra server options, such as
// interceptors.
func startServerWith(t *testing.T, p *telemetry.Providers, creds credentials.TransportCredentials, serverOpts []grpc.ServerOption, opts ...telemetry.HandlerOption) *testServer {
	t.Helper()
	ts := &testServer{
		lis:  bufconn.Listen(1 << 20),
		ends: make(chan struct{}, 256),
		seen: make(chan observation, 256),
	}
	srv := grpc.NewServer(append([]grpc.ServerOption{
		grpc.Creds(creds),
		grpc.StatsHandler(endSignal{Handler: telemetry.ServerHandler(p, opts...), ends: ts.ends}),
	}, serverOpts...)...)
	pb.RegisterGreeterServer(srv, &fakeGreeter{seen: ts.seen})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ts.lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return ts
}

// dial returns a client over ts. p instruments the client side when not nil.
func (ts *testServer) dial(t *testing.T, p *telemetry.Providers, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return ts.lis.DialContext(ctx)
		}),
	}
	if p != nil {
		opts = append(opts, grpc.WithStatsHandler(telemetry.ClientHandler(p)))
	}
	conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// waitEnd waits until the server has ended one more RPC.
func (ts *testServer) waitEnd(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ts.ends:
	case <-ctx.Done():
		t.Fatalf("server RPC did not end: %v", ctx.Err())
	}
}

// testPKI is a CA with a server certificate for "bufnet" and a client
// certificate, all generated for the test.
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("CreateCertificate(CA): %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("ParseCertificate(CA): %v", err)
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("GenerateKey: %v", err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			DNSNames:     []string{name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("CreateCertificate(%s): %v", name, err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		pool:   pool,
		server: leaf(2, "bufnet", x509.ExtKeyUsageServerAuth),
		client: leaf(3, "backup-service", x509.ExtKeyUsageClientAuth),
	}
}

// serverCreds accepts clients with or without a certificate and verifies
// any certificate that is presented.
func (k testPKI) serverCreds() credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{k.server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    k.pool,
		MinVersion:   tls.VersionTLS13,
	})
}

// clientCreds presents the client certificate when withCert is set.
func (k testPKI) clientCreds(withCert bool) credentials.TransportCredentials {
	cfg := &tls.Config{RootCAs: k.pool, ServerName: "bufnet", MinVersion: tls.VersionTLS13}
	if withCert {
		cfg.Certificates = []tls.Certificate{k.client}
	}
	return credentials.NewTLS(cfg)
}

var insecureCreds = insecure.NewCredentials()

// otelEnv lists the environment variables Setup or the SDK read. Tests
// blank them so the machine's environment cannot change the outcome.
var otelEnv = []string{
	"OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_SEMCONV_STABILITY_OPT_IN", "OTEL_SDK_DISABLED",
}

func cleanEnv(t *testing.T) {
	t.Helper()
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// setupMemory returns providers that export spans to memory and metrics to
// a manual reader as well as to Prometheus.
func setupMemory(t *testing.T, cfg telemetry.Config) (*telemetry.Providers, *tracetest.InMemoryExporter, *sdkmetric.ManualReader) {
	t.Helper()
	cleanEnv(t)
	exp := tracetest.NewInMemoryExporter()
	reader := sdkmetric.NewManualReader()
	cfg.SpanExporter = exp
	if cfg.SampleRatio == 0 {
		// Every root span, so that tests see the spans they make.
		cfg.SampleRatio = 1
	}
	cfg.MetricReaders = append(cfg.MetricReaders, reader)
	p, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return p, exp, reader
}

// spansOfKind flushes p and returns the exported spans of kind.
func spansOfKind(t *testing.T, ctx context.Context, p *telemetry.Providers, exp *tracetest.InMemoryExporter, kind trace.SpanKind) tracetest.SpanStubs {
	t.Helper()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	var out tracetest.SpanStubs
	for _, s := range exp.GetSpans() {
		if s.SpanKind == kind {
			out = append(out, s)
		}
	}
	return out
}

func oneServerSpan(t *testing.T, ctx context.Context, p *telemetry.Providers, exp *tracetest.InMemoryExporter) tracetest.SpanStub {
	t.Helper()
	spans := spansOfKind(t, ctx, p, exp, trace.SpanKindServer)
	if len(spans) != 1 {
		t.Fatalf("server spans: got %d, want 1", len(spans))
	}
	return spans[0]
}

func attrValue(attrs []attribute.KeyValue, key attribute.Key) (string, bool) {
	for _, kv := range attrs {
		if kv.Key == key {
			return kv.Value.Emit(), true
		}
	}
	return "", false
}
