package client_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/greeter/greeter/client"
	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/standard"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/servicetest"
)

// selfSigned returns TLS configs for a server named "bufnet" and a client
// that trusts it.
func selfSigned(t *testing.T) (server, cli *tls.Config) {
	t.Helper()
	return selfSignedFor(t, "bufnet")
}

// selfSignedFor returns TLS configs for a server whose certificate names
// only the DNS name name, and a client that trusts it and verifies name.
func selfSignedFor(t *testing.T, name string) (server, cli *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
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
	cli = &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS13}
	return server, cli
}

// signedToken returns an auth configuration that trusts a new Ed25519 key,
// and a token that key signed for subject with scope.
func signedToken(t testing.TB, subject, scope string) (auth.Config, string) {
	t.Helper()
	const issuer, audience, kid = "https://issuer.test", "greeterd", "k1"
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	path := filepath.Join(t.TempDir(), kid+".pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatalf("write public key: %v", err)
	}
	token, err := auth.Mint(priv, auth.MintOptions{
		Subject: subject, Scopes: []string{scope}, Issuer: issuer, Audience: []string{audience},
		TTL: 10 * time.Minute, KeyID: kid,
	})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return auth.Config{Issuer: issuer, Audience: []string{audience}, PublicKeyFiles: []string{path}}, token
}

func TestBearerTokenRequiresTLS(t *testing.T) {
	cfg, token := signedToken(t, "alice", "files:read")
	cfg.AllowInsecureTransport = false // the server also insists on TLS
	a, err := auth.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	serverTLS, clientTLS := selfSigned(t)
	// The logger's handler serialises the writes; logs is read after the
	// servers stopped.
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	chain := standard.Chain(standard.Config{Logger: logger, Auth: a.Plugin()})
	serverOpts := append(chain.ServerOptions(), grpc.Creds(credentials.NewTLS(serverTLS)))

	t.Run("plaintext is refused before sending", func(t *testing.T) {
		plainServer := standard.Chain(standard.Config{Auth: a.Plugin()}).ServerOptions()
		srv := servicetest.Start(t, servicetest.Config{ServerOptions: plainServer})
		cc, err := srv.NewConn(client.DialOptions(client.DialConfig{Token: token})...)
		if err == nil {
			cc.Close()
			t.Fatalf("grpc.NewClient with a bearer token over plaintext: got nil error, want one")
		}
		if want := "credentials require transport level security"; !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to contain %q", err, want)
		}
	})
	t.Run("TLS carries the token", func(t *testing.T) {
		// seen reports who the service runs the call as, after the chain.
		seen := make(chan string, 1)
		who := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			id, _ := identity.FromContext(ctx)
			select {
			case seen <- fmt.Sprintf("%s[%s]", id.Key(), strings.Join(id.Scopes, " ")):
			default: // a later call: the first one is checked
			}
			return next(ctx, req)
		}
		srv := servicetest.Start(t, servicetest.Config{ServerOptions: serverOpts, Unary: []grpc.UnaryServerInterceptor{who}})
		dial := append(client.DialOptions(client.DialConfig{Token: token}), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
		cc, err := srv.NewConn(dial...)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pb.NewGreeterClient(cc).SayHello(ctx, &pb.HelloRequest{Name: "bob"}); err != nil {
			t.Fatalf("SayHello over TLS: %v", err)
		}
		if got, want := <-seen, "jwt:https://issuer.test:alice[files:read]"; !strings.Contains(got, want) {
			t.Errorf("got %q, want it to contain %q", got, want)
		}
	})
	if strings.Contains(logs.String(), "eyJ") {
		t.Errorf("server logs contain a token:\n%s", logs.String())
	}
}
