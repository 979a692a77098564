package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ClientAuth is the server's policy for client certificates.
type ClientAuth int

const (
	// ClientAuthNone asks for no client certificate.
	ClientAuthNone ClientAuth = iota
	// ClientAuthRequest asks for a client certificate and verifies it if one
	// is sent (tls.VerifyClientCertIfGiven): a client without a certificate
	// connects, a client with an unverifiable one does not.
	ClientAuthRequest
	// ClientAuthRequire demands a client certificate that verifies
	// (tls.RequireAndVerifyClientCert).
	ClientAuthRequire
)

// String returns "none", "request", "require" or "ClientAuth(n)".
func (a ClientAuth) String() string {
	switch a {
	case ClientAuthNone:
		return "none"
	case ClientAuthRequest:
		return "request"
	case ClientAuthRequire:
		return "require"
	default:
		return fmt.Sprintf("ClientAuth(%d)", int(a))
	}
}

// ParseClientAuth parses "none", "request" or "require".
func ParseClientAuth(s string) (ClientAuth, error) {
	switch s {
	case "none":
		return ClientAuthNone, nil
	case "request":
		return ClientAuthRequest, nil
	case "require":
		return ClientAuthRequire, nil
	default:
		return 0, fmt.Errorf("certs: unknown client auth %q (want none, request or require)", s)
	}
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseClientAuth, so
// a ClientAuth can be a flag (flag.TextVar).
func (a *ClientAuth) UnmarshalText(b []byte) error {
	v, err := ParseClientAuth(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (a ClientAuth) MarshalText() ([]byte, error) {
	if a < ClientAuthNone || a > ClientAuthRequire {
		return nil, fmt.Errorf("certs: invalid ClientAuth %d", int(a))
	}
	return []byte(a.String()), nil
}

func (a ClientAuth) tlsClientAuth() tls.ClientAuthType {
	switch a {
	case ClientAuthRequest:
		return tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		return tls.RequireAndVerifyClientCert
	default:
		return tls.NoClientCert
	}
}

// DefaultRefreshInterval is how often, at most, a server checks its
// certificate, key and client CA files for changes when
// ServerOptions.RefreshInterval is zero. Two seconds makes a rotation visible
// almost at once while costing at most three small file reads every two
// seconds, and only while handshakes happen.
const DefaultRefreshInterval = 2 * time.Second

// ServerOptions configures ServerConfig.
type ServerOptions struct {
	// CertFile is the server certificate chain in PEM, leaf first. Required.
	CertFile string
	// KeyFile is the server's PKCS#8, PKCS#1 or SEC 1 private key in PEM.
	// Required.
	KeyFile string
	// ClientCAFile is a PEM bundle of the CAs that verify client
	// certificates. Required when ClientAuth is request or require; ignored
	// when it is none (the system roots are never used for clients).
	ClientCAFile string
	// ClientAuth is the client certificate policy. The zero value is
	// ClientAuthNone.
	ClientAuth ClientAuth
	// RefreshInterval is the longest time a changed file goes unnoticed by
	// new handshakes. Zero means DefaultRefreshInterval (2 s).
	RefreshInterval time.Duration
	// Logger receives reload events: INFO when new material is in use, ERROR
	// once per distinct bad file content. Nil discards them.
	Logger *slog.Logger
}

// ServerConfig loads the server's TLS material and returns a configuration
// for grpc.Creds(credentials.NewTLS(cfg)), and the Reloader that keeps the
// material current. The configuration requires TLS 1.3 and ALPN "h2".
//
// Loading fails if a file is missing or invalid, the key does not match the
// certificate, or the certificate has expired. Later changes are picked up as
// the Reloader describes. Close the Reloader when the server stops.
func ServerConfig(opts ServerOptions) (*tls.Config, *Reloader, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, nil, errors.New("certs: server certificate and key files are required")
	}
	if opts.ClientAuth < ClientAuthNone || opts.ClientAuth > ClientAuthRequire {
		return nil, nil, fmt.Errorf("certs: invalid client auth %v", opts.ClientAuth)
	}
	if opts.ClientAuth != ClientAuthNone && opts.ClientCAFile == "" {
		return nil, nil, fmt.Errorf("certs: client auth %v needs a client CA file", opts.ClientAuth)
	}
	if opts.ClientAuth == ClientAuthNone {
		opts.ClientCAFile = ""
	}
	if opts.RefreshInterval < 0 {
		return nil, nil, errors.New("certs: negative refresh interval")
	}
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{opts: opts, log: opts.Logger}
	if err := r.load(); err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		NextProtos:             []string{"h2"},
		ClientAuth:             opts.ClientAuth.tlsClientAuth(),
		SessionTicketsDisabled: true,
		GetConfigForClient:     r.getConfigForClient,
	}
	return cfg, r, nil
}

// Reloader keeps a server's certificate, key and client CA bundle in step
// with their files.
//
// Design: the standard library's tls.Config.GetConfigForClient hands every
// handshake the current material, and files are checked lazily, by the
// handshake (or Certificates call) that finds the last check older than the
// refresh interval; there is no watcher goroutine. grpc-go's pemfile provider
// was rejected: in v1.85.0 it logs the certificate and private key bytes when
// they do not match (tls.X509KeyPair(%q, %q) failed), logs a bad file again
// on every refresh, logs through the global grpclog rather than our
// *slog.Logger, accepts a CA bundle of which only some blocks parse, never
// reports an invalid file at start-up (KeyMaterial blocks until the context
// ends), and its Close does not wait for its goroutine.
//
// A check reads the three files and compares them with the material in use.
// A changed certificate and key replace the old pair only together, once
// both parse, match and the certificate has not expired; a changed CA bundle
// replaces the old one only if every block is a certificate. Otherwise the
// last good material stays in use and the failure is logged once for that
// file content. Session tickets are disabled, so every connection is verified
// against the CA bundle in use when it was opened, not resumed from an older
// one.
//
// A Reloader is safe for concurrent use.
type Reloader struct {
	opts ServerOptions
	log  *slog.Logger

	cur       atomic.Pointer[serverMaterial]
	nextCheck atomic.Int64 // Unix nanoseconds; checks before it are skipped

	mu           sync.Mutex // held by the goroutine checking the files
	closed       bool
	identityFail digest // content whose failure was last logged
	caFail       digest
}

// digest identifies file contents, or a read error, without keeping them.
type digest [sha256.Size]byte

func digestOf(parts ...[]byte) digest {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	var d digest
	h.Sum(d[:0])
	return d
}

// serverMaterial is one immutable generation of TLS material.
type serverMaterial struct {
	config     *tls.Config
	chain      []*x509.Certificate
	clientCAs  []*x509.Certificate
	identityID digest
	caID       digest
}

// load reads all files and fails on any problem. It is used at start-up.
func (r *Reloader) load() error {
	certPEM, err := readFile(r.opts.CertFile)
	if err != nil {
		return fmt.Errorf("certs: read server certificate: %w", err)
	}
	keyPEM, err := readFile(r.opts.KeyFile)
	if err != nil {
		return fmt.Errorf("certs: read server key: %w", err)
	}
	cert, chain, err := parseKeyPair(certPEM, keyPEM, time.Now())
	if err != nil {
		return fmt.Errorf("certs: server certificate %s and key %s: %w", r.opts.CertFile, r.opts.KeyFile, err)
	}
	m := &serverMaterial{chain: chain, identityID: digestOf(certPEM, keyPEM)}
	m.config = r.newConfig(cert, nil)
	if r.opts.ClientCAFile != "" {
		caPEM, err := readFile(r.opts.ClientCAFile)
		if err != nil {
			return fmt.Errorf("certs: read client CA bundle: %w", err)
		}
		cas, err := parseCertificatesPEM(caPEM)
		if err != nil {
			return fmt.Errorf("certs: client CA bundle %s: %w", r.opts.ClientCAFile, err)
		}
		m.clientCAs, m.caID = cas, digestOf(caPEM)
		m.config = r.newConfig(cert, cas)
	}
	r.cur.Store(m)
	r.nextCheck.Store(time.Now().Add(r.opts.RefreshInterval).UnixNano())
	return nil
}

// newConfig builds the per-connection configuration for one generation.
func (r *Reloader) newConfig(cert tls.Certificate, clientCAs []*x509.Certificate) *tls.Config {
	cfg := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		NextProtos:             []string{"h2"},
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             r.opts.ClientAuth.tlsClientAuth(),
		SessionTicketsDisabled: true,
	}
	if r.opts.ClientAuth != ClientAuthNone {
		pool := x509.NewCertPool()
		for _, c := range clientCAs {
			pool.AddCert(c)
		}
		cfg.ClientCAs = pool
	}
	return cfg
}

// parseKeyPair parses a certificate chain and its key, checking that the
// key matches the leaf and that the leaf has not expired at now.
func parseKeyPair(certPEM, keyPEM []byte, now time.Time) (tls.Certificate, []*x509.Certificate, error) {
	chain, err := parseCertificatesPEM(certPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("certificate: %w", err)
	}
	if _, err := decodePEM(keyPEM); err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if now.After(chain[0].NotAfter) {
		return tls.Certificate{}, nil, fmt.Errorf("certificate expired at %s", chain[0].NotAfter.UTC().Format(time.RFC3339))
	}
	return cert, chain, nil
}

func (r *Reloader) getConfigForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	r.maybeReload()
	return r.cur.Load().config, nil
}

// maybeReload checks the files if the last check is older than the refresh
// interval and no other goroutine is checking them. Handshakes that find a
// check in progress go on with the current material.
func (r *Reloader) maybeReload() {
	if time.Now().UnixNano() < r.nextCheck.Load() {
		return
	}
	if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	now := time.Now()
	if r.closed || now.UnixNano() < r.nextCheck.Load() {
		return
	}
	r.reloadLocked(now)
	r.nextCheck.Store(time.Now().Add(r.opts.RefreshInterval).UnixNano())
}

// reloadNow checks the files at once. Tests use it to check that a bad file
// is logged once however often it is seen.
func (r *Reloader) reloadNow() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.reloadLocked(time.Now())
	}
}

func (r *Reloader) reloadLocked(now time.Time) {
	old := r.cur.Load()
	next := *old
	changed := false

	certPEM, certErr := readFile(r.opts.CertFile)
	keyPEM, keyErr := readFile(r.opts.KeyFile)
	id := digestOf(certPEM, keyPEM)
	var cert tls.Certificate
	switch err := errors.Join(certErr, keyErr); {
	case err != nil:
		r.logIdentityFailure(digestOf([]byte(err.Error())), err)
	case id == old.identityID:
		r.identityFail = digest{}
	default:
		c, chain, err := parseKeyPair(certPEM, keyPEM, now)
		if err != nil {
			r.logIdentityFailure(id, err)
			break
		}
		cert, next.chain, next.identityID, changed = c, chain, id, true
		r.identityFail = digest{}
		r.log.Info("server certificate reloaded",
			slog.String("file", r.opts.CertFile),
			slog.String("serial", chain[0].SerialNumber.Text(16)),
			slog.Time("not_after", chain[0].NotAfter))
	}
	if !changed {
		cert = old.config.Certificates[0]
	}

	if r.opts.ClientCAFile != "" {
		caPEM, err := readFile(r.opts.ClientCAFile)
		caID := digestOf(caPEM)
		switch {
		case err != nil:
			r.logCAFailure(digestOf([]byte(err.Error())), err)
		case caID == old.caID:
			r.caFail = digest{}
		default:
			cas, err := parseCertificatesPEM(caPEM)
			if err != nil {
				r.logCAFailure(caID, err)
				break
			}
			next.clientCAs, next.caID, changed = cas, caID, true
			r.caFail = digest{}
			r.log.Info("client CA bundle reloaded",
				slog.String("file", r.opts.ClientCAFile),
				slog.Int("certificates", len(cas)))
		}
	}
	if changed {
		next.config = r.newConfig(cert, next.clientCAs)
		r.cur.Store(&next)
	}
}

func (r *Reloader) logIdentityFailure(id digest, err error) {
	if id == r.identityFail {
		return
	}
	r.identityFail = id
	r.log.Error("server certificate not reloaded; keeping the last good one",
		slog.String("cert_file", r.opts.CertFile),
		slog.String("key_file", r.opts.KeyFile),
		slog.String("error", err.Error()))
}

func (r *Reloader) logCAFailure(id digest, err error) {
	if id == r.caFail {
		return
	}
	r.caFail = id
	r.log.Error("client CA bundle not reloaded; keeping the last good one",
		slog.String("file", r.opts.ClientCAFile),
		slog.String("error", err.Error()))
}

// Certificates returns the server certificate chain in use, leaf first,
// after checking the files if the refresh interval has passed. The caller
// must not modify the certificates.
func (r *Reloader) Certificates() []*x509.Certificate {
	r.maybeReload()
	return slices.Clone(r.cur.Load().chain)
}

// ClientCAs returns the client CA certificates in use (none when client
// authentication is off), after checking the files if the refresh interval
// has passed. The caller must not modify the certificates.
func (r *Reloader) ClientCAs() []*x509.Certificate {
	r.maybeReload()
	return slices.Clone(r.cur.Load().clientCAs)
}

// NotAfter returns the expiry of the server certificate in use.
func (r *Reloader) NotAfter() time.Time {
	return r.Certificates()[0].NotAfter
}

// Close stops reloading: later handshakes keep the material in use. It
// always returns nil and may be called more than once.
func (r *Reloader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}
