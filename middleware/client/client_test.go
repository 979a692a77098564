package client_test

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
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/client"
	"github.com/greeter/greeter/middleware/internal/authtest"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/proto/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// selfSigned returns TLS configs for a server named "bufnet" and a client
// that trusts it.
func selfSigned(t *testing.T) (server, cli *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bufnet"},
		DNSNames:              []string{"bufnet"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS13}
	cli = &tls.Config{RootCAs: pool, ServerName: "bufnet", MinVersion: tls.VersionTLS13}
	return server, cli
}

func TestBearerTokenRequiresTLS(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	cfg := authtest.Config(ed)
	cfg.AllowInsecureTransport = false // the server also insists on TLS
	a, err := auth.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	serverTLS, clientTLS := selfSigned(t)
	logger, logs := greetertest.NewLogger()
	chain := standard.Chain(standard.Config{Logger: logger, Auth: a.Plugin()})
	serverOpts := append(chain.ServerOptions(), grpc.Creds(credentials.NewTLS(serverTLS)))
	token := ed.Token(t, "alice", "files:read")

	t.Run("plaintext is refused before sending", func(t *testing.T) {
		plainServer := standard.Chain(standard.Config{Auth: a.Plugin()}).ServerOptions()
		_, stop, err := greetertest.Serve(greetertest.Server{}, plainServer, client.DialOptions(client.Options{Token: token})...)
		if err == nil {
			stop()
			t.Fatalf("grpc.NewClient with a bearer token over plaintext: got nil error, want one")
		}
		if want := "credentials require transport level security"; !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to contain %q", err, want)
		}
	})
	t.Run("TLS carries the token", func(t *testing.T) {
		dial := append(client.DialOptions(client.Options{Token: token}), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
		cc := greetertest.Start(t, serverOpts, dial...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := greeterpb.NewGreeterClient(cc).SayHello(ctx, &greeterpb.HelloRequest{Name: "bob"})
		if err != nil {
			t.Fatalf("SayHello over TLS: %v", err)
		}
		if want := "alice(token)[files:read]"; !strings.Contains(r.GetMessage(), want) {
			t.Errorf("got %q, want it to contain %q", r.GetMessage(), want)
		}
	})
	if strings.Contains(logs.String(), "eyJ") {
		t.Errorf("server logs contain a token:\n%s", logs.String())
	}
}

func TestWithDefaultTimeout(t *testing.T) {
	tests := []struct {
		name         string
		callerBudget time.Duration // 0: no deadline
		want         time.Duration
	}{
		{"no deadline gets the default", 0, 3 * time.Second},
		{"caller deadline is kept", time.Hour, time.Hour},
		{"shorter caller deadline is kept", time.Second, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				if tc.callerBudget > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.callerBudget)
					defer cancel()
				}
				var got time.Duration
				invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
					d, ok := ctx.Deadline()
					if !ok {
						return errors.New("no deadline")
					}
					got = time.Until(d)
					return nil
				}
				if err := client.WithDefaultTimeout(3*time.Second)(ctx, "/Greeter/SayHello", nil, nil, nil, invoker); err != nil {
					t.Fatalf("interceptor: %v", err)
				}
				if got != tc.want {
					t.Errorf("deadline: got %v from now, want %v", got, tc.want)
				}
			})
		})
	}
}

// flaky fails each method with a scripted list of errors, then succeeds.
type flaky struct {
	greetertest.Server
	mu       sync.Mutex
	script   map[string][]error
	attempts map[string]int
}

func (f *flaky) next(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts[method]++
	if errs := f.script[method]; len(errs) > 0 {
		f.script[method] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *flaky) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[method]
}

func (f *flaky) SayHello(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.StringResponse, error) {
	if err := f.next("SayHello"); err != nil {
		return nil, err
	}
	return f.Server.SayHello(ctx, r)
}

func (f *flaky) StatFile(ctx context.Context, m *greeterpb.MetaData) (*greeterpb.FileInfo, error) {
	if err := f.next("StatFile"); err != nil {
		return nil, err
	}
	return f.Server.StatFile(ctx, m)
}

func (f *flaky) DeleteFile(ctx context.Context, m *greeterpb.MetaData) (*greeterpb.StringResponse, error) {
	if err := f.next("DeleteFile"); err != nil {
		return nil, err
	}
	return f.Server.DeleteFile(ctx, m)
}

func (f *flaky) UploadFile(s grpc.ClientStreamingServer[greeterpb.UploadFileRequest, greeterpb.StringResponse]) error {
	if err := f.next("UploadFile"); err != nil {
		return err
	}
	return f.Server.UploadFile(s)
}

func TestRetry(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "try again")
	exhausted := func(delay time.Duration) error {
		return ratelimit.Exhausted(context.Background(), "rate limit exceeded", delay)
	}
	tests := []struct {
		name         string
		method       string
		script       []error
		budget       time.Duration
		wantCode     codes.Code
		wantAttempts int
		minWait      time.Duration
		maxWait      time.Duration
	}{
		{"Unavailable twice, then OK", "SayHello", []error{unavailable, unavailable}, time.Minute, codes.OK, 3, 100 * time.Millisecond, 300 * time.Millisecond},
		{"always Unavailable", "StatFile", []error{unavailable, unavailable, unavailable, unavailable, unavailable}, time.Minute, codes.Unavailable, 4, 350 * time.Millisecond, 700 * time.Millisecond},
		{"RetryInfo is honoured", "SayHello", []error{exhausted(2 * time.Second)}, time.Minute, codes.OK, 2, 2 * time.Second, 2200 * time.Millisecond},
		{"ResourceExhausted without RetryInfo", "SayHello", []error{status.Error(codes.ResourceExhausted, "quota")}, time.Minute, codes.ResourceExhausted, 1, 0, 0},
		{"RetryInfo over the maximum", "SayHello", []error{exhausted(time.Minute)}, 5 * time.Minute, codes.ResourceExhausted, 1, 0, 0},
		{"RetryInfo past the deadline", "SayHello", []error{exhausted(2 * time.Second)}, time.Second, codes.ResourceExhausted, 1, 0, 0},
		{"not retryable code", "StatFile", []error{status.Error(codes.InvalidArgument, "bad")}, time.Minute, codes.InvalidArgument, 1, 0, 0},
		{"DeleteFile is never retried", "DeleteFile", []error{unavailable}, time.Minute, codes.Unavailable, 1, 0, 0},
		{"UploadFile is never retried", "UploadFile", []error{unavailable}, time.Minute, codes.Unavailable, 1, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				svc := &flaky{script: map[string][]error{tc.method: tc.script}, attempts: map[string]int{}}
				cc := greetertest.StartService(t, svc, nil, client.DialOptions(client.Options{})...)
				c := greeterpb.NewGreeterClient(cc)
				ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
				defer cancel()
				start := time.Now()
				var err error
				switch tc.method {
				case "SayHello":
					_, err = c.SayHello(ctx, &greeterpb.HelloRequest{})
				case "StatFile":
					_, err = c.StatFile(ctx, &greeterpb.MetaData{})
				case "DeleteFile":
					_, err = c.DeleteFile(ctx, &greeterpb.MetaData{})
				case "UploadFile":
					var s grpc.ClientStreamingClient[greeterpb.UploadFileRequest, greeterpb.StringResponse]
					if s, err = c.UploadFile(ctx); err == nil {
						if err = s.Send(&greeterpb.UploadFileRequest{}); err == nil || errors.Is(err, io.EOF) {
							_, err = s.CloseAndRecv()
						}
					}
				}
				waited := time.Since(start)
				if got := status.Code(err); got != tc.wantCode {
					t.Errorf("code: got %v (%v), want %v", got, err, tc.wantCode)
				}
				if got := svc.count(tc.method); got != tc.wantAttempts {
					t.Errorf("attempts: got %d, want %d", got, tc.wantAttempts)
				}
				if waited < tc.minWait || waited > tc.maxWait {
					t.Errorf("waited %v, want between %v and %v", waited, tc.minWait, tc.maxWait)
				}
			})
		})
	}
}

func TestIdempotentMethods(t *testing.T) {
	got := strings.Join(client.IdempotentMethods(), " ")
	for _, never := range []string{"UploadFile", "DeleteFile", "DownloadFile"} {
		if strings.Contains(got, never) {
			t.Errorf("IdempotentMethods() = %q, must not contain %s", got, never)
		}
	}
}
