package certs_test

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/greeter/greeter/certs"
)

// ExampleServerConfig wires a hot-reloading mutual TLS configuration into a
// grpc server, using a dev PKI.
func ExampleServerConfig() {
	dir, err := os.MkdirTemp("", "greeter-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	dev, err := certs.InitDev(dir, certs.DevOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	auth, err := certs.ParseClientAuth("require")
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg, reloader, err := certs.ServerConfig(certs.ServerOptions{
		CertFile:     dev.ServerCert,
		KeyFile:      dev.ServerKey,
		ClientCAFile: dev.CA,
		ClientAuth:   auth,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reloader.Close()
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	defer srv.Stop()

	fmt.Println("TLS 1.3 only:", cfg.MinVersion == tls.VersionTLS13)
	fmt.Println("client certificates:", auth)
	fmt.Println("server certificate for:", reloader.Certificates()[0].DNSNames[0])
	// Output:
	// TLS 1.3 only: true
	// client certificates: require
	// server certificate for: localhost
}

// ExampleIdentities shows the typed names a client certificate offers, in
// order of precedence; an allowlist decides which of them, if any, is the
// caller.
func ExampleIdentities() {
	dir, err := os.MkdirTemp("", "greeter-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	dev, err := certs.InitDev(dir, certs.DevOptions{ClientName: "alice"})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg, err := certs.ClientConfig(certs.ClientOptions{CAFile: dev.CA, CertFile: dev.ClientCert, KeyFile: dev.ClientKey})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, id := range certs.Identities(cfg.Certificates[0].Leaf) {
		fmt.Println(id.Key())
	}
	// Output:
	// x509-uri:spiffe://greeter.local/user/alice
	// x509-cn:alice
}
