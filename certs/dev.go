package certs

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// File names of the dev PKI inside the directory given to InitDev.
const (
	CAFile            = "ca.pem"
	CAKeyFile         = "ca-key.pem"
	ServerCertFile    = "server.pem"
	ServerKeyFile     = "server-key.pem"
	ClientCertFile    = "client.pem"
	ClientKeyFile     = "client-key.pem"
	JWTSigningKeyFile = "jwt-signing-key.pem"
	JWTPublicKeyFile  = "jwt-public-key.pem"
)

// DevTrustDomain is the SPIFFE trust domain of dev client certificates.
const DevTrustDomain = "greeter.local"

// Modes of the files InitDev creates.
const (
	devDirMode  fs.FileMode = 0o700
	devKeyMode  fs.FileMode = 0o600
	devCertMode fs.FileMode = 0o644
)

// DevOptions adjusts the certificates InitDev creates. It only affects files
// that do not exist yet: InitDev never reissues an existing certificate.
type DevOptions struct {
	// ServerDNSNames are extra DNS SANs of the server certificate, besides
	// "localhost".
	ServerDNSNames []string
	// ServerIPs are extra IP SANs of the server certificate, besides
	// 127.0.0.1 and ::1.
	ServerIPs []netip.Addr
	// ClientName names the dev client: its certificate has this common name
	// and the URI SAN spiffe://greeter.local/user/<ClientName>. Empty means
	// "dev". Only letters, digits, '.', '_' and '-' are allowed.
	ClientName string
}

// DevFiles are the paths of the dev PKI files, all inside Dir.
type DevFiles struct {
	// Dir is the directory holding the files.
	Dir string
	// CA is the dev CA certificate. Clients trust it to verify the server,
	// and the server trusts it to verify client certificates.
	CA string
	// CAKey is the dev CA's private key, used to issue further certificates.
	CAKey string
	// ServerCert and ServerKey are the server's certificate and key.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are the dev client's certificate and key.
	ClientCert, ClientKey string
	// JWTSigningKey is an Ed25519 private key (PKCS#8 PEM) for signing dev
	// tokens; JWTPublicKey is its public key (PKIX PEM) for verifying them.
	JWTSigningKey, JWTPublicKey string
	// Created reports whether this call created any file.
	Created bool
}

// InitDev makes sure dir holds a dev PKI and returns the paths of its files.
//
// Files are handled in pairs (CA, server, client, JWT keys). A pair whose two
// files both exist, parse and belong together (a leaf must also chain to the
// CA with the right extended key usage) is left alone. A pair whose files are
// both missing is created: the CA is a self-signed ECDSA P-256 certificate
// valid for DevCALifetime; the server certificate has the serverAuth usage and
// the SANs localhost, 127.0.0.1, ::1 and those of opts; the client certificate
// has the clientAuth usage and names opts.ClientName; the leaves are valid for
// DefaultLeafLifetime. Any other state (one file of a pair missing, a file
// that does not parse, a leaf from another CA) is an error, and nothing is
// overwritten: remove the directory to start again.
//
// dir is created with mode 0700 if needed (an existing directory keeps its
// mode); keys get mode 0600 and certificates 0644. Each file is written
// atomically. InitDev must not run concurrently on the same directory.
func InitDev(dir string, opts DevOptions) (*DevFiles, error) {
	name := opts.ClientName
	if name == "" {
		name = "dev"
	}
	if !validClientName(name) {
		return nil, fmt.Errorf("certs: dev client name %q: only letters, digits, '.', '_' and '-' are allowed", name)
	}
	serverReq := IssueRequest{
		Kind:        KindServer,
		CommonName:  "localhost",
		DNSNames:    append([]string{"localhost"}, opts.ServerDNSNames...),
		IPAddresses: append([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, opts.ServerIPs...),
	}
	clientReq := IssueRequest{
		Kind:       KindClient,
		CommonName: name,
		URIs:       []string{"spiffe://" + DevTrustDomain + "/user/" + name},
	}
	// Validate the requests before touching the disk.
	for _, r := range []IssueRequest{serverReq, clientReq} {
		if _, err := leafTemplate(r, time.Now()); err != nil {
			return nil, err
		}
	}

	if err := os.MkdirAll(dir, devDirMode); err != nil {
		return nil, fmt.Errorf("certs: create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("certs: open %s: %w", dir, err)
	}
	defer root.Close()

	d := devInit{root: root, dir: dir, now: time.Now()}
	ca, caKey, err := d.ensureCA()
	if err != nil {
		return nil, err
	}
	if err := d.ensureLeaf(ServerCertFile, ServerKeyFile, ca, caKey, serverReq); err != nil {
		return nil, err
	}
	if err := d.ensureLeaf(ClientCertFile, ClientKeyFile, ca, caKey, clientReq); err != nil {
		return nil, err
	}
	if err := d.ensureJWTKeys(); err != nil {
		return nil, err
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	return &DevFiles{
		Dir:           dir,
		CA:            p(CAFile),
		CAKey:         p(CAKeyFile),
		ServerCert:    p(ServerCertFile),
		ServerKey:     p(ServerKeyFile),
		ClientCert:    p(ClientCertFile),
		ClientKey:     p(ClientKeyFile),
		JWTSigningKey: p(JWTSigningKeyFile),
		JWTPublicKey:  p(JWTPublicKeyFile),
		Created:       d.created,
	}, nil
}

func validClientName(s string) bool {
	if s == "" || len(s) > maxCommonNameLength {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// devInit carries the state of one InitDev call.
type devInit struct {
	root    *os.Root
	dir     string
	now     time.Time
	created bool
}

// readPair reads a pair of files. It returns (nil, nil, nil) when both are
// missing and an error when only one is.
func (d *devInit) readPair(a, b string) (da, db []byte, err error) {
	da, errA := readRootFile(d.root, a)
	db, errB := readRootFile(d.root, b)
	missingA, missingB := errors.Is(errA, fs.ErrNotExist), errors.Is(errB, fs.ErrNotExist)
	switch {
	case missingA && missingB:
		return nil, nil, nil
	case errA != nil:
		return nil, nil, d.brokenf(a, "%v", errA)
	case errB != nil:
		return nil, nil, d.brokenf(b, "%v", errB)
	}
	return da, db, nil
}

// brokenf reports a file that stops InitDev.
func (d *devInit) brokenf(name, format string, args ...any) error {
	return fmt.Errorf("certs: dev PKI file %s: %s; remove %s to create a new dev PKI",
		filepath.Join(d.dir, name), fmt.Sprintf(format, args...), d.dir)
}

// writePair writes the key first and the certificate second, so an existing
// certificate always has its key next to it.
func (d *devInit) writePair(keyName string, keyPEM []byte, certName string, certPEM []byte, certMode fs.FileMode) error {
	if err := writeFileAtomic(d.root, keyName, keyPEM, devKeyMode); err != nil {
		return fmt.Errorf("certs: write %s: %w", filepath.Join(d.dir, keyName), err)
	}
	if err := writeFileAtomic(d.root, certName, certPEM, certMode); err != nil {
		return fmt.Errorf("certs: write %s: %w", filepath.Join(d.dir, certName), err)
	}
	d.created = true
	return nil
}

func (d *devInit) ensureCA() (*x509.Certificate, []byte, error) {
	certPEM, keyPEM, err := d.readPair(CAFile, CAKeyFile)
	if err != nil {
		return nil, nil, err
	}
	if certPEM == nil {
		certPEM, keyPEM, err = newCA("greeter dev CA", d.now, DevCALifetime)
		if err != nil {
			return nil, nil, err
		}
		if err := d.writePair(CAKeyFile, keyPEM, CAFile, certPEM, devCertMode); err != nil {
			return nil, nil, err
		}
	}
	ca, _, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return nil, nil, d.brokenf(CAFile, "%v", err)
	}
	return ca, keyPEM, nil
}

func (d *devInit) ensureLeaf(certName, keyName string, ca *x509.Certificate, caKeyPEM []byte, req IssueRequest) error {
	certPEM, keyPEM, err := d.readPair(certName, keyName)
	if err != nil {
		return err
	}
	if certPEM == nil {
		caPEM := pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: ca.Raw})
		certPEM, keyPEM, err = Issue(caPEM, caKeyPEM, req)
		if err != nil {
			return err
		}
		return d.writePair(keyName, keyPEM, certName, certPEM, devCertMode)
	}
	chain, err := parseCertificatesPEM(certPEM)
	if err != nil {
		return d.brokenf(certName, "%v", err)
	}
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return d.brokenf(keyName, "%v", err)
	}
	if !samePublicKey(key.Public(), chain[0].PublicKey) {
		return d.brokenf(keyName, "key does not match %s", certName)
	}
	eku := x509.ExtKeyUsageServerAuth
	if req.Kind == KindClient {
		eku = x509.ExtKeyUsageClientAuth
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// Verify at the leaf's own NotBefore so that an expired dev certificate
	// still counts as "exists and parses"; ServerConfig reports expiry.
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: chain[0].NotBefore,
		KeyUsages:   []x509.ExtKeyUsage{eku},
	}); err != nil {
		return d.brokenf(certName, "not a %v certificate of %s: %v", req.Kind, CAFile, err)
	}
	return nil
}

func (d *devInit) ensureJWTKeys() error {
	privPEM, pubPEM, err := d.readPair(JWTSigningKeyFile, JWTPublicKeyFile)
	if err != nil {
		return err
	}
	if privPEM == nil {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return fmt.Errorf("certs: generate JWT key: %w", err)
		}
		privPEM, err = encodePrivateKeyPEM(priv)
		if err != nil {
			return fmt.Errorf("certs: encode JWT key: %w", err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return fmt.Errorf("certs: encode JWT public key: %w", err)
		}
		pubPEM = pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der})
		return d.writePair(JWTSigningKeyFile, privPEM, JWTPublicKeyFile, pubPEM, devCertMode)
	}
	priv, err := parsePrivateKeyPEM(privPEM)
	if err != nil {
		return d.brokenf(JWTSigningKeyFile, "%v", err)
	}
	if _, ok := priv.(ed25519.PrivateKey); !ok {
		return d.brokenf(JWTSigningKeyFile, "key is %T, want an Ed25519 key", priv)
	}
	pub, err := parsePublicKeyPEM(pubPEM)
	if err != nil {
		return d.brokenf(JWTPublicKeyFile, "%v", err)
	}
	if !samePublicKey(priv.Public(), pub) {
		return d.brokenf(JWTPublicKeyFile, "does not match %s", JWTSigningKeyFile)
	}
	return nil
}

// parsePublicKeyPEM parses a file holding exactly one PKIX PUBLIC KEY block.
func parsePublicKeyPEM(data []byte) (any, error) {
	blocks, err := decodePEM(data)
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 || blocks[0].Type != pemPublicKey {
		return nil, fmt.Errorf("want exactly one %q PEM block", pemPublicKey)
	}
	return x509.ParsePKIXPublicKey(blocks[0].Bytes)
}
