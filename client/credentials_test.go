package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/greeter/greeter/client"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/standard"
	pb "github.com/greeter/greeter/proto/greeterpb"
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
	cfg, token := signedToken(t, "alice", "files:read")
	cfg.AllowInsecureTransport = false // the server also insists on TLS
	a, err := auth.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	serverTLS, clientTLS := selfSigned(t)
	logger, logs := newLogger()
	chain := standard.Chain(standard.Config{Logger: logger, Auth: a.Plugin()})
	serverOpts := append(chain.ServerOptions(), grpc.Creds(credentials.NewTLS(serverTLS)))

	t.Run("plaintext is refused before sending", func(t *testing.T) {
		plainServer := standard.Chain(standard.Config{Auth: a.Plugin()}).ServerOptions()
		_, stop, err := serveGreeter(echoServer{}, plainServer, client.DialOptions(client.DialConfig{Token: token})...)
		if err == nil {
			stop()
			t.Fatalf("grpc.NewClient with a bearer token over plaintext: got nil error, want one")
		}
		if want := "credentials require transport level security"; !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to contain %q", err, want)
		}
	})
	t.Run("TLS carries the token", func(t *testing.T) {
		dial := append(client.DialOptions(client.DialConfig{Token: token}), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
		cc := startGreeter(t, echoServer{}, serverOpts, dial...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := pb.NewGreeterClient(cc).SayHello(ctx, &pb.HelloRequest{Name: "bob"})
		if err != nil {
			t.Fatalf("SayHello over TLS: %v", err)
		}
		if want := "jwt:https://issuer.test:alice[files:read]"; !strings.Contains(r.GetMessage(), want) {
			t.Errorf("got %q, want it to contain %q", r.GetMessage(), want)
		}
	})
	if strings.Contains(logs.String(), "eyJ") {
		t.Errorf("server logs contain a token:\n%s", logs.String())
	}
}
