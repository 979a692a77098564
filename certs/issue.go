package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Kind says what a leaf certificate is for.
type Kind int

const (
	// KindServer is a server certificate: extended key usage serverAuth and
	// at least one DNS or IP subject alternative name.
	KindServer Kind = iota + 1
	// KindClient is a client certificate: extended key usage clientAuth.
	KindClient
)

// String returns "server", "client" or "Kind(n)".
func (k Kind) String() string {
	switch k {
	case KindServer:
		return "server"
	case KindClient:
		return "client"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// ParseKind parses "server" or "client".
func ParseKind(s string) (Kind, error) {
	switch s {
	case "server":
		return KindServer, nil
	case "client":
		return KindClient, nil
	default:
		return 0, fmt.Errorf("certs: unknown certificate kind %q (want server or client)", s)
	}
}

// Lifetimes and limits of issued certificates.
const (
	// DefaultLeafLifetime is the lifetime of a certificate issued with a zero
	// IssueRequest.Lifetime, and of the dev server and client certificates.
	DefaultLeafLifetime = 365 * 24 * time.Hour
	// DevCALifetime is the lifetime of the dev CA created by InitDev.
	DevCALifetime = 10 * 365 * 24 * time.Hour
	// backdate is how far before now a certificate becomes valid when the
	// request does not say, so that peers with a slightly late clock accept
	// a fresh certificate.
	backdate = 5 * time.Minute
	// maxURILength matches grpc-go's SPIFFE ID limit.
	maxURILength = 2048
	// maxCommonNameLength is ub-common-name from RFC 5280.
	maxCommonNameLength = 64
)

// IssueRequest describes a leaf certificate for Issue.
type IssueRequest struct {
	// Kind is KindServer or KindClient. Required.
	Kind Kind
	// CommonName is the subject common name. Optional for servers; a client
	// certificate needs a common name or at least one SAN.
	CommonName string
	// DNSNames are DNS subject alternative names, for example "localhost"
	// or "*.greeter.internal".
	DNSNames []string
	// IPAddresses are IP subject alternative names.
	IPAddresses []netip.Addr
	// URIs are URI subject alternative names, for example
	// "spiffe://greeter.local/user/alice". At most one is allowed, because a
	// certificate with several URI SANs names no single caller (see
	// Identities).
	URIs []string
	// NotBefore is when the certificate becomes valid. Zero means five
	// minutes before now, to tolerate clock skew.
	NotBefore time.Time
	// Lifetime is how long the certificate is valid, counted from now (or
	// from NotBefore when it is set). Zero means DefaultLeafLifetime. The
	// certificate may not outlive the CA.
	Lifetime time.Duration
}

// Issue signs a new leaf certificate with the CA whose certificate and
// PKCS#8 private key are given in PEM. It returns the certificate and a new
// ECDSA P-256 private key (PKCS#8), both PEM encoded. The serial number is 128
// random bits, so two issued certificates never share one.
func Issue(caCertPEM, caKeyPEM []byte, req IssueRequest) (certPEM, keyPEM []byte, err error) {
	ca, caKey, err := parseCA(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, err
	}
	return issue(ca, caKey, req, time.Now())
}

// parseCA parses a CA certificate and its key and checks that they belong
// together.
func parseCA(caCertPEM, caKeyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	certs, err := parseCertificatesPEM(caCertPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	if len(certs) != 1 {
		return nil, nil, fmt.Errorf("certs: CA certificate: got %d certificates, want 1", len(certs))
	}
	ca := certs[0]
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, errors.New("certs: CA certificate is not a CA (basic constraints or keyCertSign missing)")
	}
	key, err := parsePrivateKeyPEM(caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA key: %w", err)
	}
	if !samePublicKey(key.Public(), ca.PublicKey) {
		return nil, nil, errors.New("certs: CA key does not match the CA certificate")
	}
	return ca, key, nil
}

func issue(ca *x509.Certificate, caKey crypto.Signer, req IssueRequest, now time.Time) (certPEM, keyPEM []byte, err error) {
	tmpl, err := leafTemplate(req, now)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		return nil, nil, fmt.Errorf("certs: certificate would expire at %s, after its CA (%s)",
			tmpl.NotAfter.UTC().Format(time.RFC3339), ca.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: sign certificate: %w", err)
	}
	keyPEM, err = encodePrivateKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}

// leafTemplate validates req and turns it into a certificate template.
func leafTemplate(req IssueRequest, now time.Time) (*x509.Certificate, error) {
	var eku x509.ExtKeyUsage
	switch req.Kind {
	case KindServer:
		eku = x509.ExtKeyUsageServerAuth
		if len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
			return nil, errors.New("certs: a server certificate needs at least one DNS or IP SAN (clients ignore the common name)")
		}
	case KindClient:
		eku = x509.ExtKeyUsageClientAuth
		if req.CommonName == "" && len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 && len(req.URIs) == 0 {
			return nil, errors.New("certs: a client certificate needs a common name or a SAN to identify the client")
		}
	default:
		return nil, fmt.Errorf("certs: certificate kind %v: want server or client", req.Kind)
	}
	if len(req.CommonName) > maxCommonNameLength {
		return nil, fmt.Errorf("certs: common name longer than %d bytes", maxCommonNameLength)
	}
	for _, d := range req.DNSNames {
		if err := validateDNSName(d); err != nil {
			return nil, err
		}
	}
	ips := make([]net.IP, 0, len(req.IPAddresses))
	for _, a := range req.IPAddresses {
		if !a.IsValid() || a.Zone() != "" {
			return nil, fmt.Errorf("certs: invalid IP SAN %q", a)
		}
		ips = append(ips, net.IP(a.Unmap().AsSlice()))
	}
	if len(req.URIs) > 1 {
		return nil, errors.New("certs: at most one URI SAN is allowed")
	}
	uris := make([]*url.URL, 0, len(req.URIs))
	for _, s := range req.URIs {
		u, err := parseURISAN(s)
		if err != nil {
			return nil, err
		}
		uris = append(uris, u)
	}
	if req.Lifetime < 0 {
		return nil, errors.New("certs: negative lifetime")
	}
	lifetime := req.Lifetime
	if lifetime == 0 {
		lifetime = DefaultLeafLifetime
	}
	notBefore, start := now.Add(-backdate), now
	if !req.NotBefore.IsZero() {
		notBefore, start = req.NotBefore, req.NotBefore
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName},
		NotBefore:             notBefore,
		NotAfter:              start.Add(lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{eku},
		BasicConstraintsValid: true,
		DNSNames:              req.DNSNames,
		IPAddresses:           ips,
		URIs:                  uris,
	}, nil
}

// validateDNSName accepts host names made of letters, digits and hyphens,
// with an optional leading "*." wildcard label.
func validateDNSName(name string) error {
	bad := func(why string) error { return fmt.Errorf("certs: invalid DNS SAN %q: %s", name, why) }
	if name == "" || len(name) > 253 {
		return bad("empty or longer than 253 bytes")
	}
	labels := strings.Split(strings.TrimPrefix(name, "*."), ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return bad("empty label or label longer than 63 bytes")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("label starts or ends with a hyphen")
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return bad("only letters, digits, hyphens and a leading \"*.\" are allowed")
			}
		}
	}
	return nil
}

// parseURISAN parses an absolute URI with a scheme and a host, such as a
// SPIFFE ID.
func parseURISAN(s string) (*url.URL, error) {
	if len(s) > maxURILength {
		return nil, fmt.Errorf("certs: URI SAN longer than %d bytes", maxURILength)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("certs: invalid URI SAN %q: %w", s, err)
	}
	if u.Scheme == "" || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("certs: invalid URI SAN %q: want scheme://host/path without user info", s)
	}
	return u, nil
}

// randomSerial returns a positive 128-bit random serial number.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// newCA creates a self-signed ECDSA P-256 CA valid from five minutes before
// now for lifetime, and returns its certificate and PKCS#8 key in PEM.
func newCA(commonName string, now time.Time, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"greeter"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: sign CA certificate: %w", err)
	}
	keyPEM, err = encodePrivateKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: encode CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}
