package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/client"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

// TestBalancedCallsSpreadAndSkipUnhealthyReplicas: a Client of two
// replicas spreads its calls over both, sends none to a replica that
// reports NOT_SERVING until it is SERVING again, and carries on with the
// other when one stops.
func TestBalancedCallsSpreadAndSkipUnhealthyReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a, b := startReplica(t, nil), startReplica(t, nil)
	c := balanced(t, client.Options{}, a, b)
	is := func(want *replica) func(*replica) bool { return func(r *replica) bool { return r == want } }

	// Both connected: round_robin alternates.
	helloUntil(t, ctx, c, "a call on each replica", 1, is(a), a, b)
	helloUntil(t, ctx, c, "a call on each replica", 1, is(b), a, b)
	a0, b0 := a.hellos.Load(), b.hellos.Load()
	for range 20 {
		hello(t, ctx, c, a, b)
	}
	if da, db := a.hellos.Load()-a0, b.hellos.Load()-b0; da < 5 || db < 5 {
		t.Errorf("20 calls over two healthy replicas: %d and %d, want both at least 5", da, db)
	}

	// NOT_SERVING: the client's health Watch sees it and skips a.
	a.setServing(false)
	helloUntil(t, ctx, c, "the calls to leave the NOT_SERVING replica", 10, is(b), a, b)
	a0 = a.hellos.Load()
	for range 30 {
		hello(t, ctx, c, a, b)
	}
	if got := a.hellos.Load() - a0; got != 0 {
		t.Errorf("a NOT_SERVING replica got %d of 30 calls, want 0", got)
	}

	// SERVING again: back in the rotation.
	a.setServing(true)
	helloUntil(t, ctx, c, "a call on the replica SERVING again", 1, is(a), a, b)

	// Stopped: every call succeeds on the other replica (a call picked for
	// the dead one before the client noticed fails Unavailable and is
	// retried).
	a.srv.Stop()
	a0, b0 = a.hellos.Load(), b.hellos.Load()
	for range 30 {
		hello(t, ctx, c, a, b)
	}
	if da, db := a.hellos.Load()-a0, b.hellos.Load()-b0; da != 0 || db != 30 {
		t.Errorf("30 calls with one replica stopped: %d on it and %d on the other, want 0 and 30", da, db)
	}
}

// TestBalancedCallsFailWhenNoReplicaServes: with every replica NOT_SERVING
// a call fails Unavailable (after the unary retries) instead of reaching
// one of them.
func TestBalancedCallsFailWhenNoReplicaServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a, b := startReplica(t, nil), startReplica(t, nil)
	a.setServing(false)
	b.setServing(false)
	c := balanced(t, client.Options{}, a, b)
	_, err := c.Hello(ctx, "ada", 36)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("hello with no replica SERVING: %v, want Unavailable", err)
	}
	if n := a.hellos.Load() + b.hellos.Load(); n != 0 {
		t.Errorf("%d calls reached a NOT_SERVING replica, want none", n)
	}
}

// TestDownloadFailsOverToAnotherReplica stops the replica serving a
// download half way: the next attempt goes to the other replica, which
// holds the same file, and continues from the partial file instead of
// starting over.
func TestDownloadFailsOverToAnotherReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a, b := startReplica(t, nil), startReplica(t, nil)
	data := randomBytes(t, 4<<20)
	for _, r := range []*replica{a, b} {
		direct, err := client.New(r.addr, client.Options{Plaintext: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := direct.Upload(ctx, "big.bin", bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatalf("storing big.bin on %s: %v", r.addr, err)
		}
		direct.Close()
	}
	stopped := a.stopHalfWay(pb.Greeter_DownloadFile_FullMethodName, 4) // 4 chunks of 256 KiB
	b.setServing(false)                                                 // so that the download starts on a
	c := balanced(t, client.Options{}, a, b)

	dst := filepath.Join(t.TempDir(), "big.bin")
	type result struct {
		res client.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.DownloadFile(ctx, "big.bin", dst, nil)
		done <- result{res, err}
	}()
	select {
	case <-stopped:
	case r := <-done:
		t.Fatalf("the download ended before a stopped it: %+v, %v", r.res, r.err)
	}
	b.setServing(true)
	helloUntil(t, ctx, c, "the client to use b", 1, func(r *replica) bool { return r == b }, a, b)
	a.srv.Stop()

	r := <-done
	if r.err != nil {
		t.Fatalf("DownloadFile with its replica stopped half way: %v", r.err)
	}
	if r.res.Attempts != 2 || r.res.Received != int64(len(data)) {
		t.Errorf("download reported %d attempts and %d bytes received, want 2 attempts and %d bytes (no byte twice)", r.res.Attempts, r.res.Received, len(data))
	}
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the downloaded file differs from the stored one (%d bytes, %v)", len(got), err)
	}
}

// TestUploadFailsOverToAnotherReplica stops the replica receiving an
// upload half way: the next attempt goes to the other replica. These
// replicas share no storage, so it asks that one what is committed
// (QueryUpload: nothing) and sends the whole file; replicas on shared
// storage answer with the committed size and it sends only the rest, as
// TestUploadResumesAcrossBrokenConnections shows on one server.
func TestUploadFailsOverToAnotherReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a, b := startReplica(t, nil), startReplica(t, nil)
	stopped := a.stopHalfWay(pb.Greeter_UploadFile_FullMethodName, 4)
	b.setServing(false)
	c := balanced(t, client.Options{ChunkSize: 256 << 10}, a, b)
	data := randomBytes(t, 4<<20)
	src := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}

	type result struct {
		res client.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.UploadFile(ctx, src, "big.bin", nil)
		done <- result{res, err}
	}()
	select {
	case <-stopped:
	case r := <-done:
		t.Fatalf("the upload ended before a stopped it: %+v, %v", r.res, r.err)
	}
	b.setServing(true)
	helloUntil(t, ctx, c, "the client to use b", 1, func(r *replica) bool { return r == b }, a, b)
	a.srv.Stop()

	r := <-done
	if r.err != nil {
		t.Fatalf("UploadFile with its replica stopped half way: %v", r.err)
	}
	sum := sha256.Sum256(data)
	if r.res.Attempts != 2 || r.res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("upload reported %d attempts and sha256 %s, want 2 attempts and %x", r.res.Attempts, r.res.SHA256, sum)
	}
	direct, err := client.New(b.addr, client.Options{Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	var got bytes.Buffer
	if _, err := direct.Download(ctx, "big.bin", &got, nil); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Errorf("the replica that took over stores %d bytes (%v), want the %d uploaded", got.Len(), err, len(data))
	}
}

// TestBalancedTLSVerifiesOneName: over TLS, every replica of a list is
// verified under one name, the host of the first address unless
// Options.TLS.ServerName names another.
func TestBalancedTLSVerifiesOneName(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	serverTLS, clientTLS := selfSignedFor(t, "localhost")
	creds := credentials.NewTLS(serverTLS)
	a, b := startReplica(t, creds), startReplica(t, creds)
	is := func(want *replica) func(*replica) bool { return func(r *replica) bool { return r == want } }
	_, portA, _ := net.SplitHostPort(a.addr)

	for _, tc := range []struct {
		name, serverName string
		addrs            []string
	}{
		// b is dialled at 127.0.0.1, which its certificate does not name,
		// and verified as localhost, the first address's host.
		{name: "first host", addrs: []string{"localhost:" + portA, b.addr}},
		{name: "server name", serverName: "localhost", addrs: []string{a.addr, b.addr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientTLS.Clone()
			cfg.ServerName = tc.serverName
			c, err := client.New(strings.Join(tc.addrs, ","), client.Options{TLS: cfg})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			helloUntil(t, ctx, c, "a call on a", 1, is(a), a, b)
			helloUntil(t, ctx, c, "a call on b", 1, is(b), a, b)
		})
	}

	// Without a name it carries, the first address's host fails on both.
	cfg := clientTLS.Clone()
	cfg.ServerName = ""
	c, err := client.New(a.addr+","+b.addr, client.Options{TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Hello(ctx, "ada", 36); status.Code(err) != codes.Unavailable {
		t.Errorf("hello verifying 127.0.0.1 against a certificate for localhost: %v, want Unavailable", err)
	}
}

// TestNewRejectsBadAddressLists: every element of a list must be
// HOST:PORT.
func TestNewRejectsBadAddressLists(t *testing.T) {
	for _, target := range []string{
		"127.0.0.1:1,",
		"127.0.0.1:1,,127.0.0.1:2",
		"127.0.0.1:1,dns:///localhost:2",
		"127.0.0.1:1,localhost",
		"127.0.0.1:1,:2",
	} {
		c, err := client.New(target, client.Options{Plaintext: true})
		if err == nil {
			c.Close()
			t.Errorf("New(%q) succeeded, want an error", target)
		}
	}
	for _, target := range []string{"127.0.0.1:1", "127.0.0.1:1, [::1]:2", "dns:///localhost:1"} {
		c, err := client.New(target, client.Options{Plaintext: true})
		if err != nil {
			t.Errorf("New(%q): %v", target, err)
			continue
		}
		c.Close()
	}
}
