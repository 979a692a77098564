package certs

import (
	"crypto/tls"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

// TestReloaderKeepsLastGoodMaterial changes the files one way or another,
// forces checks, and looks at the material in use and at the log.
func TestReloaderKeepsLastGoodMaterial(t *testing.T) {
	ca := newTestCA(t, "test CA")
	other := newTestCA(t, "other CA")
	first := ca.server(t)
	second := ca.server(t)
	expired := ca.issue(t, IssueRequest{Kind: KindServer, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-2 * time.Hour), Lifetime: time.Hour})
	twoCAs := append(append([]byte{}, ca.certPEM...), other.certPEM...)

	tests := []struct {
		name       string
		edit       func(t *testing.T, o ServerOptions)
		wantSerial *big.Int
		wantCAs    int
		wantErrors int // ERROR records after several checks
		wantInfos  int
	}{
		{"unchanged files", func(*testing.T, ServerOptions) {}, first.cert.SerialNumber, 1, 0, 0},
		{"new certificate and key", func(t *testing.T, o ServerOptions) {
			writeAtomic(t, o.KeyFile, second.keyPEM)
			writeAtomic(t, o.CertFile, second.certPEM)
		}, second.cert.SerialNumber, 1, 0, 1},
		{"new certificate, old key (half-done rotation)", func(t *testing.T, o ServerOptions) {
			writeAtomic(t, o.CertFile, second.certPEM)
		}, first.cert.SerialNumber, 1, 1, 0},
		{"truncated certificate", func(t *testing.T, o ServerOptions) {
			writeInPlace(t, o.CertFile, second.certPEM[:len(second.certPEM)-30])
			writeInPlace(t, o.KeyFile, second.keyPEM)
		}, first.cert.SerialNumber, 1, 1, 0},
		{"truncated key", func(t *testing.T, o ServerOptions) {
			writeInPlace(t, o.CertFile, second.certPEM)
			writeInPlace(t, o.KeyFile, second.keyPEM[:len(second.keyPEM)/2])
		}, first.cert.SerialNumber, 1, 1, 0},
		{"empty certificate file", func(t *testing.T, o ServerOptions) { writeInPlace(t, o.CertFile, nil) }, first.cert.SerialNumber, 1, 1, 0},
		{"expired certificate", func(t *testing.T, o ServerOptions) {
			writeAtomic(t, o.KeyFile, expired.keyPEM)
			writeAtomic(t, o.CertFile, expired.certPEM)
		}, first.cert.SerialNumber, 1, 1, 0},
		{"certificate file removed", func(t *testing.T, o ServerOptions) {
			if err := os.Remove(o.CertFile); err != nil {
				t.Fatal(err)
			}
		}, first.cert.SerialNumber, 1, 1, 0},
		{"new CA bundle", func(t *testing.T, o ServerOptions) { writeAtomic(t, o.ClientCAFile, twoCAs) },
			first.cert.SerialNumber, 2, 0, 1},
		{"truncated CA bundle", func(t *testing.T, o ServerOptions) { writeInPlace(t, o.ClientCAFile, twoCAs[:len(twoCAs)-50]) },
			first.cert.SerialNumber, 1, 1, 0},
		{"CA bundle file removed", func(t *testing.T, o ServerOptions) {
			if err := os.Remove(o.ClientCAFile); err != nil {
				t.Fatal(err)
			}
		}, first.cert.SerialNumber, 1, 1, 0},
		{"bad certificate and bad CA bundle", func(t *testing.T, o ServerOptions) {
			writeInPlace(t, o.CertFile, []byte("garbage"))
			writeInPlace(t, o.ClientCAFile, []byte("garbage"))
		}, first.cert.SerialNumber, 1, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logRecorder{}
			o := serverFiles(t, first, ca.certPEM)
			o.ClientAuth = ClientAuthRequire
			o.RefreshInterval = time.Hour // only reloadNow checks
			o.Logger = slog.New(logs)
			cfg, r, err := ServerConfig(o)
			if err != nil {
				t.Fatalf("ServerConfig: %v", err)
			}
			defer r.Close()
			tt.edit(t, o)
			for range 3 {
				r.reloadNow()
			}
			if got := r.Certificates()[0].SerialNumber; got.Cmp(tt.wantSerial) != 0 {
				t.Errorf("serial in use: got %x, want %x", got, tt.wantSerial)
			}
			conn, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if got := conn.Certificates[0].Leaf.SerialNumber; got.Cmp(tt.wantSerial) != 0 {
				t.Errorf("serial handed to handshakes: got %x, want %x", got, tt.wantSerial)
			}
			if got := len(r.ClientCAs()); got != tt.wantCAs {
				t.Errorf("client CAs in use: got %d, want %d", got, tt.wantCAs)
			}
			if got := logs.count(slog.LevelError); got != tt.wantErrors {
				t.Errorf("ERROR records after 3 checks: got %d, want %d\n%s", got, tt.wantErrors, logs.text())
			}
			if got := logs.count(slog.LevelInfo); got != tt.wantInfos {
				t.Errorf("INFO records after 3 checks: got %d, want %d\n%s", got, tt.wantInfos, logs.text())
			}
			if text := logs.text(); strings.Contains(text, "PRIVATE KEY") || strings.Contains(text, "BEGIN") {
				t.Errorf("log holds PEM content:\n%s", text)
			}
		})
	}
}

// TestReloaderRefreshInterval checks that files are not read again before
// the refresh interval has passed, and are after it.
func TestReloaderRefreshInterval(t *testing.T) {
	ca := newTestCA(t, "test CA")
	first, second := ca.server(t), ca.server(t)
	tests := []struct {
		name     string
		interval time.Duration
		want     *big.Int
	}{
		{"interval not over", time.Hour, first.cert.SerialNumber},
		{"interval over", time.Nanosecond, second.cert.SerialNumber},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := serverFiles(t, first, nil)
			o.RefreshInterval = tt.interval
			_, r, err := ServerConfig(o)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			writeAtomic(t, o.KeyFile, second.keyPEM)
			writeAtomic(t, o.CertFile, second.certPEM)
			ok := poll(func() bool { return r.Certificates()[0].SerialNumber.Cmp(tt.want) == 0 })
			if !ok {
				t.Fatalf("serial in use: got %x, want %x", r.Certificates()[0].SerialNumber, tt.want)
			}
			// Once seen, the outcome must not change.
			if got := r.Certificates()[0].SerialNumber; got.Cmp(tt.want) != 0 {
				t.Errorf("serial in use: got %x, want %x", got, tt.want)
			}
		})
	}
}

// TestReloaderClose checks that a closed Reloader keeps serving the last
// material and stops reading files.
func TestReloaderClose(t *testing.T) {
	ca := newTestCA(t, "test CA")
	first, second := ca.server(t), ca.server(t)
	o := serverFiles(t, first, nil)
	o.RefreshInterval = time.Nanosecond
	_, r, err := ServerConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	writeAtomic(t, o.KeyFile, second.keyPEM)
	writeAtomic(t, o.CertFile, second.certPEM)
	r.reloadNow()
	if got := r.Certificates()[0].SerialNumber; got.Cmp(first.cert.SerialNumber) != 0 {
		t.Errorf("serial after Close: got %x, want %x", got, first.cert.SerialNumber)
	}
}
