package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/e2e/e2etest"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

// TestFullStack runs greeterd as an operator would, with every plugin on:
// a PKI and tokens made with greeterd's own commands, TLS with client
// certificates requested, JWT, rate limits, recovery, tracing to a real
// Jaeger and Prometheus metrics. Both kinds of user go through it: a person
// with the CLI and a token, and a service with only a client certificate
// using the generated Go client.
func TestFullStack(t *testing.T) {
	j := startJaeger(t)
	pki := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		res := bins.RunServer(t, nil, args...)
		if res.Code != 0 {
			t.Fatalf("greeterd %v: exit %d: %s", args, res.Code, res.Stderr)
		}
		return res.Stdout
	}
	run("init", "--state-dir", pki)
	const billing = "spiffe://greeter.local/svc/billing"
	run("cert", "issue", "--state-dir", pki, "--kind", "client", "--uri", billing, "--out", filepath.Join(pki, "billing"))
	run("cert", "issue", "--state-dir", pki, "--kind", "client", "--uri", "spiffe://greeter.local/svc/unlisted", "--out", filepath.Join(pki, "unlisted"))
	token := strings.TrimSpace(run("token", "--state-dir", pki, "--sub", "ada", "--ttl", "10m"))
	f := func(name string) string { return filepath.Join(pki, name) }

	otel := []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=" + j.otlpHTTP, "OTEL_BSP_SCHEDULE_DELAY=100"}
	srv := bins.StartServer(t, otel,
		"--state-dir", t.TempDir(), "--data-dir", t.TempDir(),
		"--tls-cert", f("server.pem"), "--tls-key", f("server-key.pem"),
		"--client-ca", f("ca.pem"), "--client-auth", "request",
		"--jwt-public-key", f("jwt-public-key.pem"),
		"--cert-identity", billing+"=files:read+files:write",
		"--metrics-listen", "127.0.0.1:0",
		"--trace-sample-ratio", "1") // a trace per call, not greeterd's default one in ten

	// A person: the CLI with a bearer token and no client certificate.
	work := t.TempDir()
	src := filepath.Join(work, "notes.txt")
	data := writeRandom(t, src, 1<<20)
	person := []string{"--addr", srv.Addr, "--ca", f("ca.pem"), "--token", token}
	for _, args := range [][]string{
		{"hello", "--name", "Ada"},
		{"upload", src},
		{"download", "notes.txt", "-o", filepath.Join(work, "back.txt")},
	} {
		if res := bins.CLI(t, otel, append(person, args...)...); res.Code != 0 {
			t.Fatalf("greeter %v: exit %d: %s", args, res.Code, res.Stderr)
		}
	}
	if back, _ := os.ReadFile(filepath.Join(work, "back.txt")); sum(back) != sum(data) {
		t.Fatal("the person's download differs from the upload")
	}

	// A service: mutual TLS only, through the generated client.
	svc := serviceClient(t, srv.Addr, f("ca.pem"), f("billing.pem"), f("billing-key.pem"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := svc.SayHello(ctx, &pb.HelloRequest{Name: "billing"}); err != nil {
		t.Fatalf("service hello: %v", err)
	}
	up, err := svc.UploadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	invoice := []byte("id,amount\n1,42\n")
	size := int64(len(invoice))
	up.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: &pb.MetaData{Filename: "invoices/1.csv", Size: &size}}})
	up.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: invoice}})
	resp, err := up.CloseAndRecv()
	if err != nil || resp.GetSha256() != sum(invoice) {
		t.Fatalf("service upload: %v, %v", resp, err)
	}
	// The service's namespace is its certificate identity, not the person's.
	if _, err := svc.StatFile(ctx, &pb.MetaData{Filename: "notes.txt"}); status.Code(err) != codes.NotFound {
		t.Fatalf("service stat of the person's file: %v, want NotFound", err)
	}
	if _, err := svc.DeleteFile(ctx, &pb.MetaData{Filename: "invoices/1.csv"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("service delete without files:delete: %v, want PermissionDenied", err)
	}
	unlisted := serviceClient(t, srv.Addr, f("ca.pem"), f("unlisted.pem"), f("unlisted-key.pem"))
	if _, err := unlisted.SayHello(ctx, &pb.HelloRequest{Name: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("unlisted certificate: %v, want PermissionDenied", err)
	}

	// Metrics saw both transfers and the denials.
	metrics := scrape(t, metricsAddr(t, srv))
	for _, c := range []struct {
		name, label string
		min         float64
	}{
		{"greeter_transfer_bytes_total", `direction="upload"`, float64(len(data) + len(invoice))},
		{"greeter_transfer_bytes_total", `direction="download"`, float64(len(data))},
		{"greeter_auth_failures_total", `reason="permission_denied"`, 1},
		{"greeter_auth_failures_total", `reason="bad_certificate"`, 1},
		{"rpc_server_call_duration_seconds_count", `rpc_method="Greeter/UploadFile"`, 2},
	} {
		if got := metricValue(metrics, c.name, c.label); got < c.min {
			t.Errorf("metric %s{%s} = %v, want at least %v", c.name, c.label, got, c.min)
		}
	}

	if err := srv.Stop(30 * time.Second); err != nil {
		t.Fatalf("greeterd did not stop cleanly: %v", err)
	}
	if strings.Contains(srv.Log.String(), token) {
		t.Fatal("the bearer token appears in greeterd's log")
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(j.traces(t, "greeterd")) < 6 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(j.traces(t, "greeterd")); n < 6 {
		t.Fatalf("Jaeger holds %d greeterd traces, want one per call (at least 6)", n)
	}
}

func serviceClient(t *testing.T, addr, caFile, certFile, keyFile string) pb.GreeterClient {
	t.Helper()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewGreeterClient(conn)
}

// metricsAddr reads the metrics address greeterd logged.
func metricsAddr(t *testing.T, srv *e2etest.Server) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(srv.Log.String()))
	for sc.Scan() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "metrics listening" {
			return rec.Addr
		}
	}
	t.Fatal("greeterd did not log its metrics address")
	return ""
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// metricValue sums the samples of metric name whose labels include label.
func metricValue(exposition, name, label string) float64 {
	var total float64
	line := regexp.MustCompile(`\s([0-9.e+-]+)$`)
	for _, l := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(l, name+"{") || !strings.Contains(l, label) {
			continue
		}
		if m := line.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			total += v
		}
	}
	return total
}
