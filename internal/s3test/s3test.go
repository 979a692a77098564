// Package s3test starts a real S3-compatible server, MinIO, on loopback for
// a test, so that S3 stores are tested against the real protocol and never
// against a mock.
//
// The server binary is looked up in $GREETER_MINIO, then in the repository's
// git-ignored .bin folder, where it is installed with `go install` on first
// use (a few minutes, once). MinIO's server is AGPL: it only ever runs as a
// separate process, and nothing here links it.
//
// A Server runs on free loopback ports with a fresh data directory and one
// bucket; Start closes it when the test ends, Launch leaves that to the
// caller (a TestMain sharing one server). Stop and Start simulate an
// outage: the same ports and data come back.
package s3test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/greeter/greeter/certs"
)

// MinIOModule is the MinIO server version installed into .bin when no
// binary is found.
const MinIOModule = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// BinaryEnv names the environment variable that may hold the path of a
// MinIO server binary to use instead of the one in .bin.
const BinaryEnv = "GREETER_MINIO"

// Credentials of every Server; they guard nothing but a loopback test.
const (
	AccessKey = "greeter-test"
	SecretKey = "greeter-test-secret"
)

// readyTimeout bounds how long a starting server may take to answer.
const readyTimeout = 60 * time.Second

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

	tls         bool
	bin         string
	dir         string // holds data/, certs/ and pki/; removed by Close
	addr        string
	consoleAddr string
	rootCAs     *x509.CertPool
	client      *minio.Core
	transport   *http.Transport

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd exited
	out    *syncBuffer
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
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "s3test-")
	if err != nil {
		return nil, err
	}
	s := &Server{Bucket: "greeter-test", bin: bin, dir: dir}
	for _, o := range opts {
		o(s)
	}
	if err := s.launch(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) launch() error {
	var err error
	if s.addr, err = freeAddr(); err != nil {
		return err
	}
	if s.consoleAddr, err = freeAddr(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "certs"), 0o700); err != nil {
		return err
	}
	scheme := "http"
	if s.tls {
		if err := s.setUpTLS(); err != nil {
			return fmt.Errorf("s3test: TLS: %w", err)
		}
		scheme = "https"
	}
	s.Endpoint = scheme + "://" + s.addr
	tr, err := minio.DefaultTransport(s.tls)
	if err != nil {
		return err
	}
	if s.tls {
		tr.TLSClientConfig.RootCAs = s.rootCAs
	}
	s.transport = tr
	s.client, err = minio.NewCore(s.addr, &minio.Options{
		Creds:        credentials.NewStaticV4(AccessKey, SecretKey, ""),
		Secure:       s.tls,
		Transport:    tr,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   2,
	})
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.client.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("s3test: creating bucket %q: %w", s.Bucket, err)
	}
	return nil
}

// setUpTLS writes a dev PKI and gives MinIO its server certificate.
func (s *Server) setUpTLS() error {
	pki, err := certs.InitDev(filepath.Join(s.dir, "pki"), certs.DevOptions{})
	if err != nil {
		return err
	}
	for src, dst := range map[string]string{pki.ServerCert: "public.crt", pki.ServerKey: "private.key"} {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(s.dir, "certs", dst), b, 0o600); err != nil {
			return err
		}
	}
	ca, err := os.ReadFile(pki.CA)
	if err != nil {
		return err
	}
	s.CAFile = pki.CA
	s.rootCAs = x509.NewCertPool()
	s.rootCAs.AppendCertsFromPEM(ca)
	return nil
}

// Start starts the server process (again, after Stop: same ports, same
// data) and waits until it answers. It does nothing if it runs.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command(s.bin, "server", filepath.Join(s.dir, "data"), "--address", s.addr,
		"--console-address", s.consoleAddr, "--certs-dir", filepath.Join(s.dir, "certs"), "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	s.out = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("s3test: starting %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd = cmd
	s.exited = exited
	if err := s.waitReady(exited); err != nil {
		s.stopLocked()
		return fmt.Errorf("s3test: MinIO did not become ready: %w\n%s", err, s.out.String())
	}
	return nil
}

// waitReady polls until the server answers its liveness endpoint and
// then serves S3 requests: MinIO answers "live" before its object layer
// is initialized.
func (s *Server) waitReady(exited <-chan struct{}) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.rootCAs}}}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for ctx.Err() == nil {
		last = s.ready(ctx, hc)
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("the process exited")
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	return last
}

// ready reports whether the server is live and lists its buckets.
func (s *Server) ready(ctx context.Context, hc *http.Client) error {
	resp, err := hc.Get(s.Endpoint + "/minio/health/live")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	_, err = s.client.ListBuckets(ctx)
	return err
}

// Stop kills the server process and waits for it to exit; the data stays
// for Start. It does nothing if the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Close stops the server, closes its client's connections and removes
// its data.
func (s *Server) Close() error {
	s.Stop()
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return os.RemoveAll(s.dir)
}

// Client returns a client of the server with the root credentials, for
// tests to look into the bucket behind a store's back.
func (s *Server) Client() *minio.Core { return s.client }

// Log returns what the server printed since it last started.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// Binary returns the path of a MinIO server binary: $GREETER_MINIO if set,
// else the repository's .bin/minio, installing MinIOModule there first if
// it is missing.
func Binary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("s3test: $%s: %w", BinaryEnv, err)
		}
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", ".bin")
	path := filepath.Join(bin, "minio")
	installMu.Lock()
	defer installMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(bin, ".minio-install.lock"))
	if err != nil {
		return "", fmt.Errorf("s3test: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil // another test binary installed it meanwhile
	}
	fmt.Fprintf(os.Stderr, "s3test: installing %s into %s (one time, a few minutes)\n", MinIOModule, bin)
	cmd := exec.Command("go", "install", MinIOModule)
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("s3test: cannot install the MinIO server (set $%s to a minio binary, or fix the error): %w\n%s", BinaryEnv, err, out)
	}
	return path, nil
}

// installMu keeps tests of one package from installing MinIO twice.
var installMu sync.Mutex

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a child's
// stdout and stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
