package client_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/client"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

// A Go service calls greeterd with mutual TLS only: its client certificate
// (here spiffe://greeter.local/svc/billing) is its identity, and greeterd
// lists it with --cert-identity. No bearer token is involved.
func Example_mutualTLS() {
	dir, err := os.MkdirTemp("", "greeter-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dev, err := certs.InitDev(dir, certs.DevOptions{})
	if err != nil {
		log.Fatal(err)
	}
	const billing = "spiffe://greeter.local/svc/billing"
	caPEM, _ := os.ReadFile(dev.CA)
	caKeyPEM, _ := os.ReadFile(dev.CAKey)
	certPEM, keyPEM, err := certs.Issue(caPEM, caKeyPEM, certs.IssueRequest{Kind: certs.KindClient, URIs: []string{billing}})
	if err != nil {
		log.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "billing.pem"), filepath.Join(dir, "billing-key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)

	// The server side, as greeterd --client-auth=require
	// --cert-identity spiffe://greeter.local/svc/billing=files:read+files:write wires it.
	addr, stop := serveMTLS(dev, map[string][]string{billing: {"files:read", "files:write"}})
	defer stop()

	// The client side: what another Go service writes.
	tlsCfg, err := certs.ClientConfig(certs.ClientOptions{CAFile: dev.CA, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(addr, client.Options{TLS: tlsCfg})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	res, err := c.Upload(ctx, "invoices/2026-11.csv", strings.NewReader("id,amount\n1,42\n"), -1, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored", res.Name, res.Size, "bytes")
	info, err := c.Stat(ctx, "invoices/2026-11.csv")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sha256", info.GetSha256()[:12])
	// Output:
	// stored invoices/2026-11.csv 15 bytes
	// sha256 0f7573cb5487
}

func serveMTLS(dev *certs.DevFiles, identities map[string][]string) (string, func()) {
	tlsCfg, reloader, err := certs.ServerConfig(certs.ServerOptions{
		CertFile: dev.ServerCert, KeyFile: dev.ServerKey,
		ClientCAFile: dev.CA, ClientAuth: certs.ClientAuthRequire,
	})
	if err != nil {
		log.Fatal(err)
	}
	store, err := diskstore.Open(filepath.Join(dev.Dir, "data"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	authn, err := auth.New(ctx, auth.Config{
		PublicKeyFiles:        []string{dev.JWTPublicKey},
		Issuer:                "greeterd",
		Audience:              []string{"greeter"},
		PeerCertificate:       certs.PeerCertificate,
		CertificateIdentities: identities,
	})
	if err != nil {
		log.Fatal(err)
	}
	chain := standard.Chain(standard.Config{Auth: authn.Plugin()})
	srv := grpc.NewServer(append(chain.ServerOptions(), grpc.Creds(credentials.NewTLS(tlsCfg)))...)
	service.New(store, service.Options{}).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(lis)
	return lis.Addr().String(), func() { srv.Stop(); store.Close(); reloader.Close() }
}
