package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/proto/greeterpb"
)

// TestFaultRotateCertAndKeysUnderLoad replaces the server certificate and
// retires a JWT verification key while clients keep calling
// (RELIABILITY.md T5, A13): no call on the new key fails, an upload begun
// with a token of the retired key finishes, new calls with that token
// fail Unauthenticated, and new connections get the new certificate.
func TestFaultRotateCertAndKeysUnderLoad(t *testing.T) {
	faultNoLeaks(t)
	run := func(args ...string) string {
		t.Helper()
		res := bins.RunServer(t, nil, args...)
		if res.Code != 0 {
			t.Fatalf("greeterd %s: exit %d\n%s", strings.Join(args, " "), res.Code, res.Stderr)
		}
		return strings.TrimSpace(res.Stdout)
	}
	oldPKI, newKeys := t.TempDir(), t.TempDir()
	run("init", "--state-dir", oldPKI)
	run("init", "--state-dir", newKeys) // only its JWT key pair is used
	srvDir, keyDir := t.TempDir(), t.TempDir()
	copyFile := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		faultReplaceFile(t, to, b)
	}
	copyFile(filepath.Join(oldPKI, "server.pem"), filepath.Join(srvDir, "server.pem"))
	copyFile(filepath.Join(oldPKI, "server-key.pem"), filepath.Join(srvDir, "server-key.pem"))
	copyFile(filepath.Join(oldPKI, "jwt-public-key.pem"), filepath.Join(keyDir, "old.pem"))
	copyFile(filepath.Join(newKeys, "jwt-public-key.pem"), filepath.Join(keyDir, "new.pem"))
	oldToken := run("token", "--state-dir", oldPKI, "--sub", "load", "--kid", "old")
	newToken := run("token", "--state-dir", newKeys, "--sub", "load", "--kid", "new")

	srv := bins.StartServer(t, nil, append([]string{
		"--data-dir", t.TempDir(),
		"--tls-cert", filepath.Join(srvDir, "server.pem"), "--tls-key", filepath.Join(srvDir, "server-key.pem"),
		"--tls-reload-interval", "200ms",
		"--idle-timeout", "2m", // the upload begun before the rotation waits through it
		"--jwt-public-key", filepath.Join(keyDir, "old.pem") + "," + filepath.Join(keyDir, "new.pem"),
	}, faultLimits...)...)
	ca := filepath.Join(oldPKI, "ca.pem")
	serial := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", srv.Addr, func() *tls.Config { c := faultTLS(t, ca); c.NextProtos = []string{"h2"}; return c }())
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	oldSerial := serial()
	oldClient := greeterpb.NewGreeterClient(faultDial(t, srv.Addr, ca, oldToken))
	if _, err := oldClient.SayHello(faultCtx(t), &greeterpb.HelloRequest{Name: "old"}); err != nil {
		t.Fatalf("hello with the old key's token before the rotation: %v", err)
	}

	// Load: workers on the new key, each on its own long-lived connection
	// made before the rotation. Each round is a hello and an upload.
	const workers, maxRounds = 4, 2000
	stop := make(chan struct{})
	rounds := make([]chan struct{}, workers) // a tick after every round
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		rounds[w] = make(chan struct{}, maxRounds)
		c := greeterpb.NewGreeterClient(faultDial(t, srv.Addr, ca, newToken))
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte(w)}, 256<<10)
			for i := range maxRounds {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(t.Context(), faultWait)
				_, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: "load"})
				if err == nil {
					err = faultUpload(ctx, c, fmt.Sprintf("w%d-%d.bin", w, i%8), data)
				}
				cancel()
				if err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, i, err)
					return
				}
				rounds[w] <- struct{}{}
			}
		})
	}
	// waitRounds waits until every worker finished n more rounds.
	waitRounds := func(n int) {
		t.Helper()
		for w := range workers {
			for drained := false; !drained; {
				select {
				case <-rounds[w]:
				default:
					drained = true
				}
			}
			for range n {
				select {
				case <-rounds[w]:
				case err := <-errs:
					t.Fatal(err)
				case <-time.After(faultWait):
					t.Fatalf("worker %d made no progress for %v", w, faultWait)
				}
			}
		}
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	waitRounds(2)

	// An upload with the old key's token begins before the rotation.
	long := bytes.Repeat([]byte("long"), 1<<20)
	longStream, err := faultBeginUpload(faultCtx(t), oldClient, "long.bin", long)
	if err != nil {
		t.Fatal(err)
	}

	// Rotate the server certificate: write both files anew, atomically.
	issued := filepath.Join(t.TempDir(), "server")
	run("cert", "issue", "--state-dir", oldPKI, "--kind", "server", "--name", "localhost", "--dns", "localhost", "--ip", "127.0.0.1", "--out", issued)
	copyFile(issued+"-key.pem", filepath.Join(srvDir, "server-key.pem"))
	copyFile(issued+".pem", filepath.Join(srvDir, "server.pem"))
	var newSerial string
	faultWaitFor(t, "new connections to get the new certificate", func() bool { newSerial = serial(); return newSerial != oldSerial })
	waitRounds(2)

	// Retire the old key: its file now holds the new public key.
	copyFile(filepath.Join(newKeys, "jwt-public-key.pem"), filepath.Join(keyDir, "old.pem"))
	faultWaitFor(t, "the old key's tokens to be refused", func() bool {
		_, err := oldClient.SayHello(faultCtx(t), &greeterpb.HelloRequest{Name: "old"})
		if err != nil && status.Code(err) != codes.Unauthenticated {
			t.Fatalf("hello with the retired key's token: %v, want OK until the reload and Unauthenticated after", err)
		}
		return err != nil
	})
	for range 3 {
		if _, err := oldClient.SayHello(faultCtx(t), &greeterpb.HelloRequest{Name: "old"}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("hello with the retired key's token after the reload: %v, want Unauthenticated", err)
		}
	}
	if err := faultFinishUpload(longStream, long); err != nil {
		t.Errorf("the upload begun with the retired key's token before the rotation: %v", err)
	}
	waitRounds(2)

	// A client that connects now works with the new key and certificate.
	fresh := greeterpb.NewGreeterClient(faultDial(t, srv.Addr, ca, newToken))
	if err := faultUpload(faultCtx(t), fresh, "fresh.bin", []byte("fresh")); err != nil {
		t.Errorf("upload on a new connection after the rotation: %v", err)
	}
	if s := serial(); s != newSerial {
		t.Errorf("certificate serial %s after the rotation, want %s", s, newSerial)
	}
	select {
	case err := <-errs:
		t.Errorf("a call on the new key failed during the rotation: %v", err)
	default:
	}
}

// faultReplaceFile replaces path with data atomically: a temporary file
// in the same directory, synced, then renamed over path.
func faultReplaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), ".replace-*")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		t.Fatal(err)
	}
}
