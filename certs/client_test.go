package certs

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestClientConfig(t *testing.T) {
	dev, err := InitDev(t.TempDir(), DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		opts         ClientOptions
		wantRoots    bool
		wantCerts    int
		wantServName string
	}{
		{"system roots", ClientOptions{}, false, 0, ""},
		{"dev CA", ClientOptions{CAFile: dev.CA, ServerName: "localhost"}, true, 0, "localhost"},
		{"mutual TLS", ClientOptions{CAFile: dev.CA, CertFile: dev.ClientCert, KeyFile: dev.ClientKey}, true, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ClientConfig(tt.opts)
			if err != nil {
				t.Fatalf("ClientConfig: %v", err)
			}
			if cfg.MinVersion != tls.VersionTLS13 {
				t.Errorf("MinVersion: got %#x, want TLS 1.3", cfg.MinVersion)
			}
			if len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "h2" {
				t.Errorf("NextProtos: got %q, want [h2]", cfg.NextProtos)
			}
			if got := cfg.RootCAs != nil; got != tt.wantRoots {
				t.Errorf("RootCAs set: got %v, want %v", got, tt.wantRoots)
			}
			if got := len(cfg.Certificates); got != tt.wantCerts {
				t.Errorf("Certificates: got %d, want %d", got, tt.wantCerts)
			}
			if cfg.ServerName != tt.wantServName {
				t.Errorf("ServerName: got %q, want %q", cfg.ServerName, tt.wantServName)
			}
			if cfg.InsecureSkipVerify {
				t.Error("InsecureSkipVerify: got true")
			}
		})
	}
}

func TestClientConfigErrors(t *testing.T) {
	dir := t.TempDir()
	dev, err := InitDev(dir, DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "test CA")
	expired := ca.issue(t, IssueRequest{Kind: KindClient, CommonName: "old", NotBefore: time.Now().Add(-2 * time.Hour), Lifetime: time.Hour})
	expiredCert, expiredKey := filepath.Join(dir, "expired.pem"), filepath.Join(dir, "expired-key.pem")
	writeAtomic(t, expiredCert, expired.certPEM)
	writeAtomic(t, expiredKey, expired.keyPEM)
	truncatedCA := filepath.Join(dir, "truncated-ca.pem")
	b, err := os.ReadFile(dev.CA)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, truncatedCA, b[:len(b)-40])

	tests := []struct {
		name string
		opts ClientOptions
		want string
	}{
		{"certificate without key", ClientOptions{CertFile: dev.ClientCert}, "go together"},
		{"key without certificate", ClientOptions{KeyFile: dev.ClientKey}, "go together"},
		{"missing CA file", ClientOptions{CAFile: dev.CA + ".missing"}, "no such file"},
		{"truncated CA file", ClientOptions{CAFile: truncatedCA}, "truncated"},
		{"key of another certificate", ClientOptions{CertFile: dev.ClientCert, KeyFile: dev.ServerKey}, "does not match"},
		{"expired client certificate", ClientOptions{CertFile: expiredCert, KeyFile: expiredKey}, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ClientConfig(tt.opts)
			if err == nil {
				t.Fatalf("ClientConfig: got %p, want an error containing %q", cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ClientConfig: got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
