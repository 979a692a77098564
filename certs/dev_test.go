package certs

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var devFileNames = []string{CAFile, CAKeyFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile, JWTSigningKeyFile, JWTPublicKeyFile}

func readDevFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, n := range devFileNames {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
		m[n] = b
	}
	return m
}

func TestInitDevCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "pki")
	dev, err := InitDev(dir, DevOptions{
		ServerDNSNames: []string{"greeter.test"},
		ServerIPs:      []netip.Addr{netip.MustParseAddr("10.1.2.3")},
		ClientName:     "alice",
	})
	if err != nil {
		t.Fatalf("InitDev: %v", err)
	}
	if !dev.Created {
		t.Error("Created: got false, want true")
	}
	paths := map[string]string{
		CAFile: dev.CA, CAKeyFile: dev.CAKey, ServerCertFile: dev.ServerCert, ServerKeyFile: dev.ServerKey,
		ClientCertFile: dev.ClientCert, ClientKeyFile: dev.ClientKey,
		JWTSigningKeyFile: dev.JWTSigningKey, JWTPublicKeyFile: dev.JWTPublicKey,
	}
	for name, got := range paths {
		if want := filepath.Join(dir, name); got != want {
			t.Errorf("path of %s: got %q, want %q", name, got, want)
		}
	}

	// Modes.
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode: got %v (%v), want 0700", st.Mode().Perm(), err)
	}
	for _, n := range devFileNames {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(n, "key") && n != JWTPublicKeyFile {
			if st.Mode().Perm() != 0o600 {
				t.Errorf("mode of %s: got %v, want 0600", n, st.Mode().Perm())
			}
		} else if st.Mode().Perm()&0o022 != 0 {
			t.Errorf("mode of %s: got %v, want no group or world write", n, st.Mode().Perm())
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(devFileNames) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want exactly the %d dev files", names, len(devFileNames))
	}

	files := readDevFiles(t, dir)
	ca, _, err := parseCA(files[CAFile], files[CAKeyFile])
	if err != nil {
		t.Fatalf("dev CA: %v", err)
	}
	if got := ca.NotAfter.Sub(ca.NotBefore); got < DevCALifetime || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("dev CA: got lifetime %v, algorithm %v; want at least %v, ECDSA", got, ca.PublicKeyAlgorithm, DevCALifetime)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	server, err := parseCertificatesPEM(files[ServerCertFile])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "greeter.test", "10.1.2.3"} {
		if _, err := server[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate for %q: %v", host, err)
		}
	}
	if got := server[0].NotAfter.Sub(server[0].NotBefore); got < DefaultLeafLifetime || got > DefaultLeafLifetime+time.Hour {
		t.Errorf("server certificate lifetime: got %v, want about %v", got, DefaultLeafLifetime)
	}

	client, err := parseCertificatesPEM(files[ClientCertFile])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if id := firstKey(client[0]); id != "x509-uri:spiffe://greeter.local/user/alice" || client[0].Subject.CommonName != "alice" {
		t.Errorf("client certificate: got identity %q, CN %q; want x509-uri:spiffe://greeter.local/user/alice, alice", id, client[0].Subject.CommonName)
	}

	priv, err := parsePrivateKeyPEM(files[JWTSigningKeyFile])
	if err != nil {
		t.Fatalf("JWT signing key: %v", err)
	}
	pub, err := parsePublicKeyPEM(files[JWTPublicKeyFile])
	if err != nil {
		t.Fatalf("JWT public key: %v", err)
	}
	msg := []byte("token")
	edPriv, ok1 := priv.(ed25519.PrivateKey)
	edPub, ok2 := pub.(ed25519.PublicKey)
	if !ok1 || !ok2 || !ed25519.Verify(edPub, msg, ed25519.Sign(edPriv, msg)) {
		t.Errorf("JWT keys: got %T and %T, want a matching Ed25519 pair", priv, pub)
	}

	// The files work as they are for a server and a client.
	_, r, err := ServerConfig(ServerOptions{CertFile: dev.ServerCert, KeyFile: dev.ServerKey, ClientCAFile: dev.CA, ClientAuth: ClientAuthRequire})
	if err != nil {
		t.Fatalf("ServerConfig with the dev files: %v", err)
	}
	r.Close()
	if _, err := ClientConfig(ClientOptions{CAFile: dev.CA, CertFile: dev.ClientCert, KeyFile: dev.ClientKey}); err != nil {
		t.Fatalf("ClientConfig with the dev files: %v", err)
	}
}

func TestInitDevIsIdempotent(t *testing.T) {
	dir := t.TempDir() // exists already, with its own mode
	first, err := InitDev(dir, DevOptions{})
	if err != nil {
		t.Fatalf("InitDev: %v", err)
	}
	before := readDevFiles(t, dir)
	stats := map[string]fs.FileInfo{}
	for _, n := range devFileNames {
		stats[n], _ = os.Stat(filepath.Join(dir, n))
	}
	// Different options do not reissue anything.
	second, err := InitDev(dir, DevOptions{ClientName: "other", ServerDNSNames: []string{"x.test"}})
	if err != nil {
		t.Fatalf("second InitDev: %v", err)
	}
	if second.Created {
		t.Error("second InitDev: Created got true, want false")
	}
	if *second != (DevFiles{Dir: first.Dir, CA: first.CA, CAKey: first.CAKey, ServerCert: first.ServerCert, ServerKey: first.ServerKey,
		ClientCert: first.ClientCert, ClientKey: first.ClientKey, JWTSigningKey: first.JWTSigningKey, JWTPublicKey: first.JWTPublicKey}) {
		t.Errorf("second InitDev: got %+v, want the paths of %+v", second, first)
	}
	after := readDevFiles(t, dir)
	for _, n := range devFileNames {
		st, _ := os.Stat(filepath.Join(dir, n))
		if !bytes.Equal(before[n], after[n]) || !os.SameFile(st, stats[n]) || !st.ModTime().Equal(stats[n].ModTime()) {
			t.Errorf("%s changed on the second InitDev", n)
		}
	}
	client, _ := parseCertificatesPEM(after[ClientCertFile])
	if got := client[0].Subject.CommonName; got != "dev" {
		t.Errorf("client common name: got %q, want the default dev", got)
	}
}

// TestInitDevRecreatesMissingPair removes a whole pair: only that pair is
// created again, signed by the existing CA.
func TestInitDevRecreatesMissingPair(t *testing.T) {
	dir := t.TempDir()
	if _, err := InitDev(dir, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	before := readDevFiles(t, dir)
	for _, n := range []string{ClientCertFile, ClientKeyFile} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	dev, err := InitDev(dir, DevOptions{ClientName: "carol"})
	if err != nil {
		t.Fatalf("InitDev: %v", err)
	}
	if !dev.Created {
		t.Error("Created: got false, want true")
	}
	after := readDevFiles(t, dir)
	for _, n := range devFileNames {
		changed := !bytes.Equal(before[n], after[n])
		if want := n == ClientCertFile || n == ClientKeyFile; changed != want {
			t.Errorf("%s changed: got %v, want %v", n, changed, want)
		}
	}
	client, _ := parseCertificatesPEM(after[ClientCertFile])
	if id := firstKey(client[0]); id != "x509-uri:spiffe://greeter.local/user/carol" {
		t.Errorf("new client identity: got %q, want x509-uri:spiffe://greeter.local/user/carol", id)
	}
}

// TestInitDevRefusesBrokenState checks that partial or corrupt files are
// reported and never overwritten.
func TestInitDevRefusesBrokenState(t *testing.T) {
	otherCA := newTestCA(t, "other CA")
	foreignClient := otherCA.issue(t, IssueRequest{Kind: KindClient, CommonName: "x"})
	tests := []struct {
		name string
		edit func(t *testing.T, dir string)
		want string
	}{
		{"server key missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ServerKeyFile)) }, ServerKeyFile},
		{"CA certificate missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, CAFile)) }, CAFile},
		{"truncated CA certificate", func(t *testing.T, dir string) {
			p := filepath.Join(dir, CAFile)
			b, _ := os.ReadFile(p)
			writeInPlace(t, p, b[:len(b)/2])
		}, CAFile},
		{"client certificate of another CA", func(t *testing.T, dir string) {
			writeInPlace(t, filepath.Join(dir, ClientCertFile), foreignClient.certPEM)
			writeInPlace(t, filepath.Join(dir, ClientKeyFile), foreignClient.keyPEM)
		}, ClientCertFile},
		{"server key of the client", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, ClientKeyFile))
			writeInPlace(t, filepath.Join(dir, ServerKeyFile), b)
		}, ServerKeyFile},
		{"client and server swapped", func(t *testing.T, dir string) {
			c, _ := os.ReadFile(filepath.Join(dir, ClientCertFile))
			k, _ := os.ReadFile(filepath.Join(dir, ClientKeyFile))
			writeInPlace(t, filepath.Join(dir, ServerCertFile), c)
			writeInPlace(t, filepath.Join(dir, ServerKeyFile), k)
		}, ServerCertFile},
		{"JWT public key of another key", func(t *testing.T, dir string) {
			other := t.TempDir()
			if _, err := InitDev(other, DevOptions{}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(other, JWTPublicKeyFile))
			writeInPlace(t, filepath.Join(dir, JWTPublicKeyFile), b)
		}, JWTPublicKeyFile},
		{"JWT signing key is ECDSA", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, ServerKeyFile))
			writeInPlace(t, filepath.Join(dir, JWTSigningKeyFile), b)
		}, "Ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := InitDev(dir, DevOptions{}); err != nil {
				t.Fatal(err)
			}
			tt.edit(t, dir)
			before := map[string][]byte{}
			for _, n := range devFileNames {
				before[n], _ = os.ReadFile(filepath.Join(dir, n))
			}
			dev, err := InitDev(dir, DevOptions{})
			if err == nil {
				t.Fatalf("InitDev: got %+v, want an error naming %s", dev, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("InitDev: got error %q, want it to name %s", err, tt.want)
			}
			for _, n := range devFileNames {
				got, _ := os.ReadFile(filepath.Join(dir, n))
				if !bytes.Equal(got, before[n]) {
					t.Errorf("%s was changed by a failing InitDev", n)
				}
			}
		})
	}
}

func TestInitDevRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts DevOptions
	}{
		{"client name with slash", DevOptions{ClientName: "../admin"}},
		{"client name with space", DevOptions{ClientName: "a b"}},
		{"bad extra DNS name", DevOptions{ServerDNSNames: []string{"bad name"}}},
		{"invalid extra IP", DevOptions{ServerIPs: []netip.Addr{{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pki")
			if _, err := InitDev(dir, tt.opts); err == nil {
				t.Fatal("InitDev: got nil error, want one")
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("directory after rejected options: got %v, want it not created", err)
			}
		})
	}
}
