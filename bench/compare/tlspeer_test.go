package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greeter/greeter/certs"
)

// TestTLSPeerRoundTrip moves a file through the raw TLS peer over real TLS
// on loopback and back, as the tls target does.
func TestTLSPeerRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	pki, err := certs.InitDev(filepath.Join(dir, "pki"), certs.DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	if err := os.Mkdir(store, 0o700); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	served := make(chan error, 1)
	go func() {
		_, err := runTLSPeer(ctx, []string{cmdTLSServe, addr, store, pki.ServerCert, pki.ServerKey})
		served <- err
	}()
	// 3 MiB and a bit: more than one buffer, not a multiple of one.
	data := make([]byte, 3<<20+12345)
	rand.Read(data)
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var putErr error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, putErr = runTLSPeer(ctx, []string{cmdTLSPut, addr, pki.CA, src, "obj"}); putErr == nil || time.Now().After(deadline) {
			break
		}
	}
	if putErr != nil {
		t.Fatalf("tls-put: %v", putErr)
	}
	if got, err := os.ReadFile(filepath.Join(store, "obj")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes (%v), want the %d sent", len(got), err, len(data))
	}
	if ok, err := runTLSPeer(ctx, []string{cmdTLSGet, addr, pki.CA, "obj", dst}); !ok || err != nil {
		t.Fatalf("tls-get: %v, %v", ok, err)
	}
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes (%v), want %d", len(got), err, len(data))
	}
	// A name with a path and a missing object fail; the server lives on.
	if _, err := runTLSPeer(ctx, []string{cmdTLSPut, addr, pki.CA, src, "../escape"}); err == nil {
		t.Errorf("tls-put of ../escape succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
		t.Errorf("tls-put wrote outside its directory")
	}
	if _, err := runTLSPeer(ctx, []string{cmdTLSGet, addr, pki.CA, "missing", dst}); err == nil {
		t.Errorf("tls-get of a missing object succeeded")
	}
	// A client that does not trust the server's CA is refused.
	if _, err := runTLSPeer(ctx, []string{cmdTLSGet, addr, pki.ClientCert, "obj", dst}); err == nil {
		t.Errorf("tls-get trusting the wrong certificate succeeded")
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("tls-serve: %v", err)
	}
	if ok, _ := runTLSPeer(ctx, []string{"upload", "a", "b", "c", "d"}); ok {
		t.Errorf("runTLSPeer claimed a command that is not the peer's")
	}
}

// TestThenSync runs the scp-sync wrapper with stand-ins for scp and sync:
// the arguments reach both unchanged, and the second runs only if the
// first succeeded.
func TestThenSync(t *testing.T) {
	file := "/tmp/a file with spaces"
	argv := thenSync([]string{"printf", "%s|", "x y", "$HOME"}, []string{"echo", "synced"}, file)
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if want := "x y|$HOME|synced " + file + "\n"; err != nil || string(out) != want {
		t.Errorf("output %q, %v; want %q", out, err, want)
	}
	argv = thenSync([]string{"false"}, []string{"echo", "synced"}, file)
	out, err = exec.Command(argv[0], argv[1:]...).Output()
	if err == nil || strings.Contains(string(out), "synced") {
		t.Errorf("after a failed copy: output %q, error %v; want no sync and an error", out, err)
	}
}
