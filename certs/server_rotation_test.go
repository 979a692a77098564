package certs

import (
	"log/slog"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestRotationOverTheWire rotates the server certificate under a running
// grpc server (RELIABILITY.md T5): new connections see the new certificate
// within the refresh interval, an open connection and its stream keep
// working, and a truncated file does not replace the last good certificate.
func TestRotationOverTheWire(t *testing.T) {
	ca := newTestCA(t, "test CA")
	first, second, third := ca.server(t), ca.server(t), ca.server(t)
	client := ca.issue(t, IssueRequest{Kind: KindClient, CommonName: "alice", Lifetime: time.Hour})

	logs := &logRecorder{}
	o := serverFiles(t, first, ca.certPEM)
	o.ClientAuth = ClientAuthRequire
	o.RefreshInterval = 50 * time.Millisecond
	o.Logger = slog.New(logs)
	cfg, r, err := ServerConfig(o)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	defer r.Close()
	srv := startServer(t, cfg)
	creds := credentials.NewTLS(clientTLS(t, ca, &client))
	ctx := testContext(t)

	// serialOfNewConnection opens a new connection, makes one call and
	// returns the server serial it saw.
	serialOfNewConnection := func() *big.Int {
		t.Helper()
		conn := dial(t, srv.addr, creds)
		defer conn.Close()
		s, err := check(ctx, conn)
		if err != nil {
			t.Fatalf("Check on a new connection: %v", err)
		}
		return s
	}

	old := dial(t, srv.addr, creds)
	if s, err := check(ctx, old); err != nil || s.Cmp(first.cert.SerialNumber) != 0 {
		t.Fatalf("first connection: got serial %x, err %v; want %x", s, err, first.cert.SerialNumber)
	}
	watch, err := healthpb.NewHealthClient(old).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch first message: got %v, %v; want SERVING", m, err)
	}

	// Rotate: key first, then certificate, each by rename.
	writeAtomic(t, o.KeyFile, second.keyPEM)
	writeAtomic(t, o.CertFile, second.certPEM)
	if !poll(func() bool { return serialOfNewConnection().Cmp(second.cert.SerialNumber) == 0 }) {
		t.Fatalf("new connections did not get serial %x within 10 s", second.cert.SerialNumber)
	}

	// The old connection and its stream are unaffected.
	if s, err := check(ctx, old); err != nil || s.Cmp(first.cert.SerialNumber) != 0 {
		t.Errorf("old connection after rotation: got serial %x, err %v; want %x", s, err, first.cert.SerialNumber)
	}
	srv.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Watch after rotation: got %v, %v; want NOT_SERVING", m, err)
	}

	// A truncated certificate is logged once and the last good one stays.
	writeInPlace(t, o.CertFile, third.certPEM[:len(third.certPEM)/2])
	if !poll(func() bool { r.Certificates(); return logs.count(slog.LevelError) > 0 }) {
		t.Fatalf("no ERROR logged for a truncated certificate within 10 s:\n%s", logs.text())
	}
	for range 3 {
		if got := serialOfNewConnection(); got.Cmp(second.cert.SerialNumber) != 0 {
			t.Fatalf("new connection after a truncated write: got serial %x, want the last good %x", got, second.cert.SerialNumber)
		}
		r.reloadNow()
	}
	if got := logs.count(slog.LevelError); got != 1 {
		t.Errorf("ERROR records for one bad file: got %d, want 1\n%s", got, logs.text())
	}

	// Finishing the write makes the third certificate current.
	writeInPlace(t, o.KeyFile, third.keyPEM)
	writeInPlace(t, o.CertFile, third.certPEM)
	if !poll(func() bool { return serialOfNewConnection().Cmp(third.cert.SerialNumber) == 0 }) {
		t.Fatalf("new connections did not get serial %x within 10 s", third.cert.SerialNumber)
	}
	if s, err := check(ctx, old); err != nil || s.Cmp(first.cert.SerialNumber) != 0 {
		t.Errorf("old connection at the end: got serial %x, err %v; want %x", s, err, first.cert.SerialNumber)
	}
}

// TestClientCARotation adds a CA to the client CA bundle of a running
// server: a client of the new CA is refused before and accepted after.
func TestClientCARotation(t *testing.T) {
	ca := newTestCA(t, "test CA")
	next := newTestCA(t, "next CA")
	nextClient := next.issue(t, IssueRequest{Kind: KindClient, CommonName: "carol", Lifetime: time.Hour})

	o := serverFiles(t, ca.server(t), ca.certPEM)
	o.ClientAuth = ClientAuthRequire
	o.RefreshInterval = 50 * time.Millisecond
	cfg, r, err := ServerConfig(o)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	defer r.Close()
	srv := startServer(t, cfg)
	creds := credentials.NewTLS(clientTLS(t, ca, &nextClient))
	ctx := testContext(t)
	attempt := func() error {
		conn := dial(t, srv.addr, creds)
		defer conn.Close()
		_, err := check(ctx, conn)
		return err
	}
	if err := attempt(); err == nil {
		t.Fatal("client of a CA not in the bundle: got OK, want a failure")
	}
	writeAtomic(t, filepath.Clean(o.ClientCAFile), append(append([]byte{}, ca.certPEM...), next.certPEM...))
	if !poll(func() bool { return attempt() == nil }) {
		t.Fatalf("client of the added CA still refused after 10 s: %v", attempt())
	}
	if got := srv.lastCall().identity; got != "x509-cn:carol" {
		t.Errorf("identity: got %q, want x509-cn:carol", got)
	}
}
