package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestMutualTLSWithInitFiles sets up a PKI with "greeterd init", serves with
// --client-auth=require, and checks that the CLI gets in only with a client
// certificate from that CA.
func TestMutualTLSWithInitFiles(t *testing.T) {
	state := t.TempDir()
	res := bins.RunServer(t, nil, "init", "--state-dir", state)
	if res.Code != 0 || !strings.Contains(res.Stdout, "created") {
		t.Fatalf("greeterd init: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = bins.RunServer(t, nil, "init", "--state-dir", state)
	if res.Code != 0 || !strings.Contains(res.Stdout, "nothing changed") {
		t.Fatalf("a second greeterd init must change nothing: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	f := func(name string) string { return filepath.Join(state, name) }
	srv := bins.StartServer(t, nil,
		"--data-dir", t.TempDir(),
		"--tls-cert", f("server.pem"), "--tls-key", f("server-key.pem"),
		"--client-ca", f("ca.pem"), "--client-auth", "require",
		"--jwt-public-key", f("jwt-public-key.pem"))

	token := []string{"--token-file", f("token")}
	withCert := append([]string{"--addr", srv.Addr, "--ca", f("ca.pem"), "--cert", f("client.pem"), "--key", f("client-key.pem")}, token...)
	res = bins.CLI(t, nil, append(withCert, "hello", "--name", "svc")...)
	if res.Code != 0 || strings.TrimSpace(res.Stdout) != "Hello, svc! Your age is 0" {
		t.Fatalf("hello with a client certificate: exit %d\nstdout %q\nstderr %q", res.Code, res.Stdout, res.Stderr)
	}

	res = bins.CLI(t, nil, append([]string{"--addr", srv.Addr, "--ca", f("ca.pem")}, append(token, "hello")...)...)
	if res.Code != 6 || !strings.Contains(res.Stderr, "Unavailable") {
		t.Fatalf("hello without a client certificate: exit %d, stderr %q; want 6 and Unavailable", res.Code, res.Stderr)
	}

	// A certificate issued by the same CA with "greeterd cert issue" works too.
	out := filepath.Join(t.TempDir(), "billing")
	res = bins.RunServer(t, nil, "cert", "issue", "--state-dir", state, "--kind", "client", "--name", "billing",
		"--uri", "spiffe://greeter.local/svc/billing", "--out", out)
	if res.Code != 0 {
		t.Fatalf("greeterd cert issue: exit %d\n%s", res.Code, res.Stderr)
	}
	res = bins.CLI(t, nil, append([]string{"--addr", srv.Addr, "--ca", f("ca.pem"), "--cert", out + ".pem", "--key", out + "-key.pem"}, append(token, "hello")...)...)
	if res.Code != 0 {
		t.Fatalf("hello with an issued certificate: exit %d, stderr %q", res.Code, res.Stderr)
	}

	// The server's certificate must verify: a client trusting another CA fails.
	other := t.TempDir()
	if r := bins.RunServer(t, nil, "init", "--state-dir", other); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	res = bins.CLI(t, nil, append([]string{"--addr", srv.Addr, "--ca", filepath.Join(other, "ca.pem"), "--cert", f("client.pem"), "--key", f("client-key.pem")}, append(token, "hello")...)...)
	if res.Code != 6 {
		t.Fatalf("hello trusting the wrong CA: exit %d, stderr %q; want 6", res.Code, res.Stderr)
	}
}
