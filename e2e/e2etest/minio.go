package e2etest

import (
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
)

// MinIO, an S3-compatible server, runs as a separate process for the tests
// of the S3 store (internal/s3test builds on this) and for the end-to-end
// tests of greeterd on S3. Its server is AGPL: it only ever runs as its
// own process, and nothing here links it.

// MinIOModule is the MinIO server version installed into the repository's
// .bin folder when no binary is found; .ci/run installs the same.
const MinIOModule = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// MinIOBinaryEnv names the environment variable that may hold the path of
// a MinIO server binary to use instead of the one in .bin.
const MinIOBinaryEnv = "GREETER_MINIO"

// Credentials of every MinIO; they guard nothing but a loopback test.
const (
	MinIOAccessKey = "greeter-test"
	MinIOSecretKey = "greeter-test-secret"
)

// minioReadyTimeout bounds how long a starting server may take to answer.
const minioReadyTimeout = 60 * time.Second

// MinIOConfig says where a MinIO keeps its files and how it serves.
type MinIOConfig struct {
	// Dir holds the server's data/ and certs/ folders. The caller owns it.
	Dir string
	// RootCAs, when not nil, makes the server serve HTTPS with the
	// certificate the caller put in Dir/certs (public.crt, private.key),
	// and is what its clients trust.
	RootCAs *x509.CertPool
	// Bucket, when not empty, is created once the server first answers.
	Bucket string
}

// MinIO is a MinIO server process on free loopback ports. Stop and Start
// simulate an outage: the same ports and data come back.
type MinIO struct {
	// Endpoint is the server's URL: http://127.0.0.1:PORT, or https://
	// with MinIOConfig.RootCAs.
	Endpoint string

	cfg         MinIOConfig
	bin         string
	addr        string
	consoleAddr string
	client      *minio.Core
	transport   *http.Transport

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd exited
	out    *SyncBuffer
}

// StartMinIO launches a MinIO over plain HTTP on loopback with bucket
// created, for t, and stops it and removes its data when t ends. It fails
// the test if the server cannot be had; it never skips.
func StartMinIO(t testing.TB, bucket string) *MinIO {
	t.Helper()
	m, err := LaunchMinIO(MinIOConfig{Dir: t.TempDir(), Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// LaunchMinIO starts a server, waits until it answers and creates
// cfg.Bucket. The caller must Close it.
func LaunchMinIO(cfg MinIOConfig) (*MinIO, error) {
	bin, err := MinIOBinary()
	if err != nil {
		return nil, err
	}
	m := &MinIO{cfg: cfg, bin: bin}
	if err := m.launch(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (m *MinIO) launch() error {
	var err error
	if m.addr, err = freeAddr(); err != nil {
		return err
	}
	if m.consoleAddr, err = freeAddr(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(m.cfg.Dir, "certs"), 0o700); err != nil {
		return err
	}
	secure := m.cfg.RootCAs != nil
	m.Endpoint = "http://" + m.addr
	if secure {
		m.Endpoint = "https://" + m.addr
	}
	if m.transport, err = minio.DefaultTransport(secure); err != nil {
		return err
	}
	if secure {
		m.transport.TLSClientConfig.RootCAs = m.cfg.RootCAs
	}
	m.client, err = minio.NewCore(m.addr, &minio.Options{
		Creds:        credentials.NewStaticV4(MinIOAccessKey, MinIOSecretKey, ""),
		Secure:       secure,
		Transport:    m.transport,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   2,
	})
	if err != nil {
		return err
	}
	if err := m.Start(); err != nil {
		return err
	}
	if m.cfg.Bucket == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), minioReadyTimeout)
	defer cancel()
	if err := m.client.MakeBucket(ctx, m.cfg.Bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("e2etest: creating bucket %q: %w", m.cfg.Bucket, err)
	}
	return nil
}

// Start starts the server process (again, after Stop: same ports, same
// data) and waits until it answers. It does nothing if it runs.
func (m *MinIO) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return nil
	}
	cmd := exec.Command(m.bin, "server", filepath.Join(m.cfg.Dir, "data"), "--address", m.addr,
		"--console-address", m.consoleAddr, "--certs-dir", filepath.Join(m.cfg.Dir, "certs"), "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+MinIOAccessKey, "MINIO_ROOT_PASSWORD="+MinIOSecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	m.out = &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = m.out, m.out
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("e2etest: starting %s: %w", m.bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	m.cmd = cmd
	m.exited = exited
	if err := m.waitReady(exited); err != nil {
		m.stopLocked()
		return fmt.Errorf("e2etest: MinIO did not become ready: %w\n%s", err, m.out.String())
	}
	return nil
}

// waitReady polls until the server answers its liveness endpoint and
// then serves S3 requests: MinIO answers "live" before its object layer
// is initialized.
func (m *MinIO) waitReady(exited <-chan struct{}) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: m.cfg.RootCAs}}}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), minioReadyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for ctx.Err() == nil {
		last = m.ready(ctx, hc)
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
func (m *MinIO) ready(ctx context.Context, hc *http.Client) error {
	resp, err := hc.Get(m.Endpoint + "/minio/health/live")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	_, err = m.client.ListBuckets(ctx)
	return err
}

// Stop kills the server process and waits for it to exit; the data stays
// for Start. It does nothing if the server is not running.
func (m *MinIO) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopLocked()
}

func (m *MinIO) stopLocked() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}

// Close stops the server and closes its client's connections. The caller
// removes MinIOConfig.Dir (StartMinIO's is a test's temporary directory).
func (m *MinIO) Close() {
	m.Stop()
	if m.transport != nil {
		m.transport.CloseIdleConnections()
	}
}

// Client returns a client of the server with the root credentials, for
// tests to look into the bucket behind a store's back.
func (m *MinIO) Client() *minio.Core { return m.client }

// Log returns what the server printed since it last started.
func (m *MinIO) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.out == nil {
		return ""
	}
	return m.out.String()
}

// MinIOBinary returns the path of a MinIO server binary: $GREETER_MINIO if
// set, else the repository's .bin/minio, installing MinIOModule there
// first if it is missing (a few minutes, once).
func MinIOBinary() (string, error) {
	if p := os.Getenv(MinIOBinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("e2etest: $%s: %w", MinIOBinaryEnv, err)
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
		return "", fmt.Errorf("e2etest: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil // another test binary installed it meanwhile
	}
	fmt.Fprintf(os.Stderr, "e2etest: installing %s into %s (one time, a few minutes)\n", MinIOModule, bin)
	cmd := exec.Command("go", "install", MinIOModule)
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("e2etest: cannot install the MinIO server (set $%s to a minio binary, or fix the error): %w\n%s", MinIOBinaryEnv, err, out)
	}
	return path, nil
}

// installMu keeps tests of one binary from installing MinIO twice.
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
