// Package s3test starts a real S3-compatible server, MinIO, on loopback for
// a test, so that S3 stores are tested against the real protocol and never
// against a mock.
//
// The server process is e2etest's MinIO (the binary from $GREETER_MINIO,
// else the repository's git-ignored .bin folder, where it is installed with
// `go install` on first use), shared with the end-to-end tests; this
// package adds HTTPS with a fresh dev CA. MinIO's server is AGPL: it only
// ever runs as a separate process, and nothing here links it.
//
// A Server runs on free loopback ports with a fresh data directory and one
// bucket; Start closes it when the test ends, Launch leaves that to the
// caller (a TestMain sharing one server). Stop and Start simulate an
// outage: the same ports and data come back.
package s3test

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/e2e/e2etest"
)

// MinIOModule is the MinIO server version installed into .bin when no
// binary is found.
const MinIOModule = e2etest.MinIOModule

// BinaryEnv names the environment variable that may hold the path of a
// MinIO server binary to use instead of the one in .bin.
const BinaryEnv = e2etest.MinIOBinaryEnv

// Credentials of every Server; they guard nothing but a loopback test.
const (
	AccessKey = e2etest.MinIOAccessKey
	SecretKey = e2etest.MinIOSecretKey
)

// Server is a MinIO server on loopback with one bucket.
type Server struct {
	// Endpoint is the server's URL: http://127.0.0.1:PORT, or https:// with
	// WithTLS.
	Endpoint string
	// Bucket is the bucket created for the test.
	Bucket string
	// CAFile is the PEM file of the CA that signed the server's
	// certificate; empty without WithTLS.
	CAFile string

	tls bool
	dir string // holds data/, certs/ and pki/; removed by Close
	*e2etest.MinIO
}

// Option configures Start and Launch.
type Option func(*Server)

// WithTLS makes the server serve HTTPS with a certificate for 127.0.0.1
// from a fresh CA, whose certificate is in Server.CAFile.
func WithTLS() Option {
	return func(s *Server) { s.tls = true }
}

// Start launches a server for t and closes it when t ends. It fails the
// test if the server cannot be had; it never skips.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := Launch(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Launch starts a server, waits until it answers and creates its bucket.
// The caller must Close it. Launch suits a TestMain that shares one server
// among a package's tests.
func Launch(opts ...Option) (*Server, error) {
	dir, err := os.MkdirTemp("", "s3test-")
	if err != nil {
		return nil, err
	}
	s := &Server{Bucket: "greeter-test", dir: dir}
	for _, o := range opts {
		o(s)
	}
	cfg := e2etest.MinIOConfig{Dir: dir, Bucket: s.Bucket}
	if s.tls {
		if cfg.RootCAs, err = s.setUpTLS(); err != nil {
			s.Close()
			return nil, fmt.Errorf("s3test: TLS: %w", err)
		}
	}
	if s.MinIO, err = e2etest.LaunchMinIO(cfg); err != nil {
		s.Close()
		return nil, fmt.Errorf("s3test: %w", err)
	}
	s.Endpoint = s.MinIO.Endpoint
	return s, nil
}

// setUpTLS writes a dev PKI, gives MinIO its server certificate and
// returns the pool of its CA.
func (s *Server) setUpTLS() (*x509.CertPool, error) {
	pki, err := certs.InitDev(filepath.Join(s.dir, "pki"), certs.DevOptions{})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "certs"), 0o700); err != nil {
		return nil, err
	}
	for src, dst := range map[string]string{pki.ServerCert: "public.crt", pki.ServerKey: "private.key"} {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(s.dir, "certs", dst), b, 0o600); err != nil {
			return nil, err
		}
	}
	ca, err := os.ReadFile(pki.CA)
	if err != nil {
		return nil, err
	}
	s.CAFile = pki.CA
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return pool, nil
}

// Close stops the server, closes its client's connections and removes
// its data.
func (s *Server) Close() error {
	if s.MinIO != nil {
		s.MinIO.Close()
	}
	return os.RemoveAll(s.dir)
}

// Binary returns the path of a MinIO server binary: $GREETER_MINIO if set,
// else the repository's .bin/minio, installing MinIOModule there first if
// it is missing.
func Binary() (string, error) { return e2etest.MinIOBinary() }
