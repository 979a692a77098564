package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/e2e/e2etest"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

// identBilling is the SPIFFE ID of the billing service in these tests.
const identBilling = "spiffe://greeter.local/svc/billing"

// identPKI is a PKI made with greeterd's own commands: the dev CA and JWT
// keys from "greeterd init", and client certificates from "greeterd cert
// issue".
type identPKI struct {
	t   *testing.T
	dir string
}

func newIdentPKI(t *testing.T) *identPKI {
	p := &identPKI{t: t, dir: t.TempDir()}
	p.run("init", "--state-dir", p.dir)
	return p
}

// run runs greeterd with args and returns its output; it must succeed.
func (p *identPKI) run(args ...string) string {
	p.t.Helper()
	res := bins.RunServer(p.t, nil, args...)
	if res.Code != 0 {
		p.t.Fatalf("greeterd %v: exit %d: %s", args, res.Code, res.Stderr)
	}
	return res.Stdout
}

func (p *identPKI) file(name string) string { return filepath.Join(p.dir, name) }

// issue issues a client certificate to <dir>/<out>.pem with the given
// "greeterd cert issue" flags.
func (p *identPKI) issue(out string, flags ...string) {
	p.t.Helper()
	p.run(append([]string{"cert", "issue", "--state-dir", p.dir, "--kind", "client", "--out", p.file(out)}, flags...)...)
}

// token mints a token with "greeterd token" and the given flags.
func (p *identPKI) token(flags ...string) string {
	p.t.Helper()
	return strings.TrimSpace(p.run(append([]string{"token", "--state-dir", p.dir, "--ttl", "10m"}, flags...)...))
}

// serve starts greeterd with the PKI's server certificate, its CA for
// client certificates (requested, not required) and its JWT key.
func (p *identPKI) serve(extra ...string) *e2etest.Server {
	p.t.Helper()
	args := append([]string{
		"--state-dir", p.t.TempDir(), "--data-dir", p.t.TempDir(),
		"--tls-cert", p.file("server.pem"), "--tls-key", p.file("server-key.pem"),
		"--client-ca", p.file("ca.pem"), "--client-auth", "request",
		"--jwt-public-key", p.file("jwt-public-key.pem"),
	}, extra...)
	return bins.StartServer(p.t, nil, args...)
}

// dial connects to srv over TLS with the client certificate cert (none if
// empty) and the bearer token (none if empty).
func (p *identPKI) dial(srv *e2etest.Server, cert, token string) pb.GreeterClient {
	p.t.Helper()
	caPEM, err := os.ReadFile(p.file("ca.pem"))
	if err != nil {
		p.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(p.file(cert+".pem"), p.file(cert+"-key.pem"))
		if err != nil {
			p.t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(faultBearer(token)))
	}
	conn, err := grpc.NewClient(srv.Addr, opts...)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { conn.Close() })
	return pb.NewGreeterClient(conn)
}

func identCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestHardeningIdentityTypes is R1: a token whose sub is a service's
// SPIFFE ID, and a certificate whose common name (with no SAN) is that
// SPIFFE ID, are not that service. Identities are typed end to end: the
// token is jwt:<iss>:<sub> with its own (empty) namespace, the CN-only
// certificate is unlisted (an x509-cn identity would have to be listed with
// an explicit x509-cn: entry), and greeterd logs the typed identity.
func TestHardeningIdentityTypes(t *testing.T) {
	p := newIdentPKI(t)
	p.issue("billing", "--uri", identBilling)
	p.issue("cn-only", "--name", identBilling)
	impostor := p.token("--sub", identBilling)
	srv := p.serve("--cert-identity", identBilling+"=files:read+files:write")
	ctx := identCtx(t)

	billing := p.dial(srv, "billing", "")
	invoice := []byte("id,amount\n1,42\n")
	if err := faultUpload(ctx, billing, "invoices/1.csv", invoice); err != nil {
		t.Fatalf("billing upload: %v", err)
	}
	if _, err := billing.StatFile(ctx, &pb.MetaData{Filename: "invoices/1.csv"}); err != nil {
		t.Fatalf("billing stat of its own file: %v", err)
	}

	// R1: the token's sub equals the billing URI SAN, but a token is a
	// different identity: jwt:greeterd:spiffe://..., another owner.
	_, err := p.dial(srv, "", impostor).StatFile(ctx, &pb.MetaData{Filename: "invoices/1.csv"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("token with sub %s: StatFile = %v, want NotFound", identBilling, err)
	}

	// R1: a certificate naming the SPIFFE ID only in its CN is not the URI
	// SAN the allowlist entry names; unlisted certificates are denied.
	_, err = p.dial(srv, "cn-only", "").StatFile(ctx, &pb.MetaData{Filename: "invoices/1.csv"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("CN-only certificate %q: StatFile = %v, want PermissionDenied", identBilling, err)
	}

	if err := srv.Stop(30 * time.Second); err != nil {
		t.Fatalf("greeterd did not stop cleanly: %v", err)
	}
	log := srv.Log.String()
	for _, want := range []string{
		`"identity":"x509-uri:` + identBilling + `"`,
		`"identity":"jwt:greeterd:` + identBilling + `"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("greeterd's log lacks %s", want)
		}
	}
}

// TestHardeningTokenCertificateBinding is R1 for mTLS deployments that want
// a token to belong to the connection it arrives on: with
// --require-token-cert-match a token must carry cnf x5t#S256 of the client
// certificate (RFC 8705), as "greeterd token --cnf-cert" mints it.
func TestHardeningTokenCertificateBinding(t *testing.T) {
	p := newIdentPKI(t)
	p.issue("billing", "--uri", identBilling)
	p.issue("other", "--uri", "spiffe://greeter.local/svc/other")
	bound := p.token("--sub", "ada", "--cnf-cert", p.file("billing.pem"))
	unbound := p.token("--sub", "ada")
	srv := p.serve("--require-token-cert-match")
	ctx := identCtx(t)

	for _, tc := range []struct {
		name, cert, token string
		want              codes.Code
	}{
		{"bound token with its certificate", "billing", bound, codes.OK},
		{"bound token with another certificate", "other", bound, codes.Unauthenticated},
		{"bound token without a certificate", "", bound, codes.Unauthenticated},
		{"unbound token with a certificate", "billing", unbound, codes.Unauthenticated},
	} {
		_, err := p.dial(srv, tc.cert, tc.token).SayHello(ctx, &pb.HelloRequest{Name: "ada"})
		if status.Code(err) != tc.want {
			t.Errorf("%s: SayHello = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// identLegacyData writes a data directory the way greeterd wrote it before
// identities were typed (layout 1, no layout file): owner folders are the
// untyped owner in base64url. The billing service owns invoices/1.csv; the
// token subject "ada" owns notes.txt and half of the resumable upload "up1"
// (its part file and state).
func identLegacyData(t *testing.T, upload []byte) string {
	t.Helper()
	dir := t.TempDir()
	folder := func(owner string) string { return base64.RawURLEncoding.EncodeToString([]byte(owner)) }
	write := func(rel string, data []byte) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("objects/"+folder(identBilling)+"/invoices/1.csv", []byte("id,amount\n1,42\n"))
	write("objects/"+folder("ada")+"/notes.txt", []byte("ada's notes\n"))
	half := len(upload) / 2
	h := sha256.New()
	h.Write(upload[:half])
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	js, err := json.Marshal(map[string]any{
		"version": 1, "name": "big.bin", "size": len(upload), "sha256": sum(upload),
		"committed": half, "hash": state, "created": now, "updated": now,
	})
	if err != nil {
		t.Fatal(err)
	}
	write("uploads/"+folder("ada")+"/up1.part", upload[:half])
	write("uploads/"+folder("ada")+"/up1.json", js)
	return dir
}

// TestHardeningMigratesLegacyDataDir is R1 and R10 on an existing data
// directory: greeterd migrates the owner folders once at start-up, to the
// typed owners its callers have now (a --cert-identity name becomes that
// certificate identity, any other owner jwt:<issuer>:<owner>), so every
// caller keeps its files and its resumable upload, and a restart moves
// nothing.
func TestHardeningMigratesLegacyDataDir(t *testing.T) {
	p := newIdentPKI(t)
	p.issue("billing", "--uri", identBilling)
	ada := p.token("--sub", "ada")
	impostor := p.token("--sub", identBilling)
	upload := make([]byte, 64<<10)
	for i := range upload {
		upload[i] = byte(i * 7)
	}
	data := identLegacyData(t, upload)
	args := []string{
		"--state-dir", t.TempDir(), "--data-dir", data,
		"--tls-cert", p.file("server.pem"), "--tls-key", p.file("server-key.pem"),
		"--client-ca", p.file("ca.pem"), "--client-auth", "request",
		"--jwt-public-key", p.file("jwt-public-key.pem"),
		"--cert-identity", identBilling + "=files:read+files:write",
	}
	for run := range 2 {
		srv := bins.StartServer(t, nil, args...)
		ctx := identCtx(t)
		if _, err := p.dial(srv, "billing", "").StatFile(ctx, &pb.MetaData{Filename: "invoices/1.csv"}); err != nil {
			t.Errorf("run %d: billing's invoice after migration: %v", run, err)
		}
		asAda := p.dial(srv, "", ada)
		if _, err := asAda.StatFile(ctx, &pb.MetaData{Filename: "notes.txt"}); err != nil {
			t.Errorf("run %d: ada's notes after migration: %v", run, err)
		}
		st, err := asAda.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: "up1"})
		if err != nil || st.GetCommittedSize() != int64(len(upload)/2) {
			t.Errorf("run %d: ada's resumable upload after migration: %v, %v; want %d bytes committed", run, st, err, len(upload)/2)
		}
		_, err = p.dial(srv, "", impostor).StatFile(ctx, &pb.MetaData{Filename: "invoices/1.csv"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("run %d: token with sub %s: StatFile of billing's invoice = %v, want NotFound", run, identBilling, err)
		}
		if err := srv.Stop(30 * time.Second); err != nil {
			t.Fatalf("greeterd did not stop cleanly: %v", err)
		}
		log := srv.Log.String()
		migrated := strings.Count(log, `"msg":"owner folders migrated"`)
		switch {
		case run == 0 && (migrated != 2 ||
			!strings.Contains(log, `"owner":"x509-uri:`+identBilling+`"`) || !strings.Contains(log, `"owner":"jwt:greeterd:ada"`)):
			t.Errorf("first start: want one migration line for each of the two owners, with its typed key:\n%s", log)
		case run == 1 && migrated != 0:
			t.Errorf("restart migrated again:\n%s", log)
		}
		for line := range strings.Lines(log) {
			if strings.Contains(line, "migrated") && (strings.Contains(line, "notes.txt") || strings.Contains(line, "1.csv")) {
				t.Errorf("a migration log line names a file: %s", line)
			}
		}
	}
}
