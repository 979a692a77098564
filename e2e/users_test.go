package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestSecondUserCannotSeeFirstUsersFiles mints a token for a second user
// with "greeterd token" and checks that each identity sees only its own
// namespace, and that scopes are enforced.
func TestSecondUserCannotSeeFirstUsersFiles(t *testing.T) {
	srv, state := devServer(t)
	work := t.TempDir()
	src := filepath.Join(work, "secret.txt")
	writeRandom(t, src, 4096)
	cli(t, srv, state, 0, "upload", src)

	mint := func(args ...string) string {
		t.Helper()
		res := bins.RunServer(t, nil, append([]string{"token", "--state-dir", state}, args...)...)
		if res.Code != 0 {
			t.Fatalf("greeterd token %v: exit %d: %s", args, res.Code, res.Stderr)
		}
		return strings.TrimSpace(res.Stdout)
	}
	bob := mint("--sub", "bob")
	as := func(token string, want int, args ...string) string {
		t.Helper()
		res := bins.CLI(t, nil, append([]string{"--addr", srv.Addr, "--ca", filepath.Join(state, "ca.pem"), "--token", token}, args...)...)
		if res.Code != want {
			t.Fatalf("greeter %v: exit %d, want %d\n%s", args, res.Code, want, res.Stderr)
		}
		if strings.Contains(res.Stderr, token) || strings.Contains(res.Stdout, token) {
			t.Fatalf("the token was echoed back: %q", res.Stderr)
		}
		return res.Stdout + res.Stderr
	}

	if out := as(bob, 0, "ls"); strings.Contains(out, "secret.txt") {
		t.Fatalf("bob's listing shows dev's file: %q", out)
	}
	if out := as(bob, 3, "stat", "secret.txt"); !strings.Contains(out, "NotFound") {
		t.Fatalf("bob stat of dev's file: %q, want NotFound", out)
	}
	as(bob, 3, "download", "secret.txt", "-o", filepath.Join(work, "stolen.txt"))
	as(bob, 3, "rm", "secret.txt")
	// dev's file is still there.
	cli(t, srv, state, 0, "stat", "secret.txt")

	// Scopes: a read-only token can list but not upload or delete.
	reader := mint("--sub", "dev", "--scope", "files:read")
	as(reader, 0, "stat", "secret.txt")
	if out := as(reader, 4, "upload", src, "--as", "other.txt"); !strings.Contains(out, "PermissionDenied") || !strings.Contains(out, "files:write") {
		t.Fatalf("upload with a read-only token: %q, want PermissionDenied naming files:write", out)
	}
	as(reader, 4, "rm", "secret.txt")

	// A token from another issuer's key is rejected, and says why without echoing it.
	other := t.TempDir()
	if res := bins.RunServer(t, nil, "init", "--state-dir", other); res.Code != 0 {
		t.Fatal(res.Stderr)
	}
	forged := strings.TrimSpace(bins.RunServer(t, nil, "token", "--state-dir", other, "--sub", "dev").Stdout)
	if out := as(forged, 4, "ls"); !strings.Contains(out, "Unauthenticated") {
		t.Fatalf("forged token: %q, want Unauthenticated", out)
	}
	if log := srv.Log.String(); strings.Contains(log, forged) || strings.Contains(log, bob) {
		t.Fatal("a bearer token appears in greeterd's log")
	}
}
