// Package auth establishes who is calling: it verifies an
// "authorization: Bearer <JWT>" header, or accepts an allowlisted mutual-TLS
// identity, and puts a typed identity.Identity into the RPC's context.
//
// Identities are typed (see package identity): a token names
// jwt:<iss>:<sub>, a certificate x509-uri:<uri>, x509-dns:<name> or
// x509-cn:<cn>. A token's sub never becomes a certificate identity, and a
// certificate name of one type never matches an allowlist entry of another.
//
// A call that carries a bearer token is the token's caller, even on a
// connection with a verified client certificate: the token names the person
// or workload making the call, while the certificate may belong to a proxy
// or gateway that many callers share. Deployments where every token must
// belong to the connection it arrives on set Config.RequireTokenCertMatch
// (RFC 8705 certificate-bound tokens).
//
// Guarantees:
//
//   - Exactly one authorization value is accepted, at most
//     Config.MaxHeaderBytes long, with the Bearer scheme (case-insensitive).
//   - A token is accepted only if its signature verifies with a configured
//     public key, under the one algorithm pinned to that key (EdDSA for
//     Ed25519, ES256/384/512 for the NIST curves, RS256 or the JWK's RSA
//     alg); "none", HMAC and any other algorithm are refused. A token with a
//     kid must name a known key; one without is tried against every key of
//     its algorithm.
//   - Claims: iss must equal Config.Issuer; aud must contain one of
//     Config.Audience; exp is required; nbf and iat must not be in the
//     future; all with Config.Leeway (default 30 s). sub is required.
//     exp − iat (or exp − now, when iat is absent) must not exceed
//     Config.MaxTokenLifetime (default 24 h). A typ header, when present,
//     must be "JWT" or "at+jwt"; a crit header is refused.
//   - A token's identity is jwt:<Config.Issuer>:<sub>. Only one issuer is
//     accepted, so the key is unambiguous although issuers contain ":".
//   - A call without an authorization header is identified by its verified
//     client certificate (Config.PeerCertificate), if any: the first of the
//     certificate's typed names (its one URI SAN, then its DNS SANs, then
//     its common name; see certs.Identities) that Config.CertificateIdentities
//     lists. A verified certificate none of whose names is listed gets
//     PermissionDenied; a common name counts only through an explicit
//     "x509-cn:" entry.
//   - With Config.RequireTokenCertMatch, a token is accepted only on a
//     connection with a verified client certificate whose SHA-256
//     thumbprint equals the token's "cnf" claim "x5t#S256"; otherwise the
//     call is Unauthenticated with reason token_cert_mismatch.
//   - Scopes come from the "scope" claim (a space-separated string, RFC 8693
//     and RFC 9068) and the "scp" claim (an array); either may be a string
//     or an array.
//   - Rejections are Unauthenticated with a short reason that reveals
//     nothing about the keys or the token ("missing bearer token", "token
//     expired", "token signature is invalid", ...). Tokens never appear in
//     errors or logs.
//   - Unless Config.AllowInsecureTransport is set, tokens are refused on
//     connections without TLS-level privacy and integrity.
//   - Keys are reloaded without restart, by a refresher the Authenticator
//     owns (Close stops it), never by an RPC: key files are re-read when
//     their modification time or size changes (checked every
//     Config.FileCheckInterval), the JWKS URL is refetched every
//     Config.JWKSRefreshInterval and, for a token naming an unknown kid, at
//     most once per Config.UnknownKIDInterval counting only fetches that got
//     an answer. Such an RPC waits for the fetch at most until its deadline
//     or Config.UnknownKIDWait; its cancellation never cancels the fetch. A
//     source that fails keeps its last good keys; a failed fetch is retried
//     with backoff. Verifying a token reads the key set without I/O or locks.
//   - The JWKS URL must be https:// unless Config.AllowInsecureJWKSURL is
//     set, and a redirect may neither leave its host nor go from https to
//     http.
//   - Verified tokens are cached (keyed by their SHA-256, bounded by
//     Config.CacheSize) until the earlier of exp + leeway and
//     Config.CacheTTL after verification, and never across a key reload, so
//     the hot path does not verify signatures again.
//
// Anonymous returns the plugin to use when authentication is switched off.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/internal/lru"
	"github.com/greeter/greeter/middleware"
)

// Name is the plugin's name in a chain.
const Name = "auth"

// Defaults applied to zero fields of Config.
const (
	DefaultLeeway              = 30 * time.Second
	DefaultMaxTokenLifetime    = 24 * time.Hour
	DefaultMaxHeaderBytes      = 8 << 10
	DefaultFileCheckInterval   = 5 * time.Second
	DefaultJWKSRefreshInterval = time.Hour
	DefaultJWKSRetryInterval   = 30 * time.Second
	DefaultUnknownKIDInterval  = 5 * time.Minute
	DefaultUnknownKIDWait      = 2 * time.Second
	DefaultHTTPTimeout         = 5 * time.Second
	DefaultCacheSize           = 10_000
	DefaultCacheTTL            = 5 * time.Minute
)

// Reasons passed to Config.OnResult: a Result for an accepted caller, a
// Reason for a rejected one.
const (
	ResultVerified              = "verified"
	ResultCached                = "cached"
	ResultCertificate           = "certificate"
	ReasonMissingToken          = "missing_token"
	ReasonBadScheme             = "bad_scheme"
	ReasonDuplicate             = "duplicate_authorization"
	ReasonHeaderTooLarge        = "header_too_large"
	ReasonInsecureTransport     = "insecure_transport"
	ReasonMalformed             = "malformed"
	ReasonAlgNotAllowed         = "alg_not_allowed"
	ReasonBadSignature          = "bad_signature"
	ReasonUnknownKID            = "unknown_kid"
	ReasonExpired               = "expired"
	ReasonNotYetValid           = "not_yet_valid"
	ReasonMissingClaim          = "missing_claim"
	ReasonBadIssuer             = "bad_issuer"
	ReasonBadAudience           = "bad_audience"
	ReasonWrongTokenType        = "wrong_token_type"
	ReasonLifetimeTooLong       = "lifetime_too_long"
	ReasonCertificateNotAllowed = "certificate_not_allowed"
	ReasonTokenCertMismatch     = "token_cert_mismatch"
)

// failure is a rejection: the status the client sees and the reason label.
type failure struct {
	reason string
	err    error
}

func (f *failure) Error() string              { return f.err.Error() }
func (f *failure) GRPCStatus() *status.Status { return status.Convert(f.err) }
func (f *failure) Unwrap() error              { return f.err }
func unauthenticated(reason, msg string) *failure {
	return &failure{reason: reason, err: status.Error(codes.Unauthenticated, msg)}
}

var (
	errMissingToken      = unauthenticated(ReasonMissingToken, "missing bearer token")
	errBadScheme         = unauthenticated(ReasonBadScheme, "authorization scheme must be Bearer")
	errDuplicate         = unauthenticated(ReasonDuplicate, "exactly one authorization header is required")
	errHeaderTooLarge    = unauthenticated(ReasonHeaderTooLarge, "authorization header too large")
	errInsecureTransport = unauthenticated(ReasonInsecureTransport, "bearer tokens require a secure transport")
	errMalformed         = unauthenticated(ReasonMalformed, "malformed token")
	errAlgNotAllowed     = unauthenticated(ReasonAlgNotAllowed, "token algorithm not allowed")
	errBadSignature      = unauthenticated(ReasonBadSignature, "token signature is invalid")
	errUnknownKID        = unauthenticated(ReasonUnknownKID, "token signing key is unknown")
	errExpired           = unauthenticated(ReasonExpired, "token expired")
	errNotYetValid       = unauthenticated(ReasonNotYetValid, "token not yet valid")
	errMissingClaim      = unauthenticated(ReasonMissingClaim, "token is missing a required claim")
	errBadIssuer         = unauthenticated(ReasonBadIssuer, "token issuer not accepted")
	errBadAudience       = unauthenticated(ReasonBadAudience, "token audience not accepted")
	errWrongType         = unauthenticated(ReasonWrongTokenType, "token type not accepted")
	errLifetimeTooLong   = unauthenticated(ReasonLifetimeTooLong, "token lifetime too long")
	errCertNotAllowed    = &failure{reason: ReasonCertificateNotAllowed,
		err: status.Error(codes.PermissionDenied, "certificate identity not allowed")}
	errTokenCertMismatch = unauthenticated(ReasonTokenCertMismatch, "token is not bound to the client certificate")
)

// asymmetricAlgs returns the algorithms any key may be pinned to. The parser
// refuses every other algorithm ("none", HMAC) before looking at keys; the
// key function then requires the token's algorithm to be the one pinned to
// the key it names.
func asymmetricAlgs() []string {
	return []string{"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
}

// Config configures an Authenticator. Issuer, Audience and at least one key
// source are required; zero durations and sizes take the documented
// defaults.
type Config struct {
	// PublicKeyFiles are PEM files, each holding one public key ("PUBLIC
	// KEY", "RSA PUBLIC KEY" or "CERTIFICATE"). A key's kid is its file name
	// without the extension ("issuer-2026.pem" is kid "issuer-2026").
	PublicKeyFiles []string
	// JWKSFile is a JWK Set file (OKP Ed25519, EC P-256/384/521, RSA ≥ 2048
	// bits; other keys are skipped).
	JWKSFile string
	// JWKSURL is a JWK Set URL, fetched at start and refreshed. It must be
	// an absolute https:// URL (see CheckJWKSURL).
	JWKSURL string
	// AllowInsecureJWKSURL accepts an http:// JWKSURL. Anyone on the path
	// can then replace the keys: only for tests and loopback IdPs.
	AllowInsecureJWKSURL bool
	// HTTPClient fetches JWKSURL. Nil means a client with a 5 s timeout.
	// Each fetch is bounded by DefaultHTTPTimeout whatever the client, and
	// a redirect that leaves JWKSURL's host or goes from https to http is
	// refused before the client's own CheckRedirect is asked.
	HTTPClient *http.Client

	// Issuer is the required "iss".
	Issuer string
	// Audience lists accepted "aud" values; a token must name at least one.
	Audience []string
	// Leeway tolerates clock skew on exp, nbf and iat. Default 30 s; a
	// negative value means none.
	Leeway time.Duration
	// MaxTokenLifetime bounds exp − iat. Default 24 h.
	MaxTokenLifetime time.Duration
	// MaxHeaderBytes bounds the authorization value. Default 8 KiB.
	MaxHeaderBytes int
	// AllowInsecureTransport accepts tokens on connections without TLS
	// (tests, or TLS terminated by a trusted local proxy).
	AllowInsecureTransport bool

	// FileCheckInterval is how often key files are checked for changes.
	// Default 5 s, at least 1 s.
	FileCheckInterval time.Duration
	// JWKSRefreshInterval is how often JWKSURL is refetched. Default 1 h,
	// at least 1 s.
	JWKSRefreshInterval time.Duration
	// JWKSRetryInterval bounds the backoff of a failing JWKSURL: a failed
	// fetch is retried after 1 s, then 2 s, 4 s, ... up to this. Default
	// 30 s, at least 1 s.
	JWKSRetryInterval time.Duration
	// UnknownKIDInterval is the least time between fetches of JWKSURL that
	// got an answer and were triggered by tokens naming an unknown kid.
	// Default 5 min.
	UnknownKIDInterval time.Duration
	// UnknownKIDWait bounds how long an RPC whose token names an unknown
	// kid waits for the fetch it triggered; its deadline may end the wait
	// sooner. Default 2 s.
	UnknownKIDWait time.Duration

	// CacheSize bounds the verified-token cache. Default 10 000 tokens.
	CacheSize int
	// CacheTTL bounds how long a verified token is trusted without being
	// verified again. Default 5 min.
	CacheTTL time.Duration

	// PeerCertificate, if set, returns the verified client certificate of
	// the caller's connection (for example certs.PeerCertificate). It
	// identifies calls without an authorization header, and binds tokens
	// under RequireTokenCertMatch.
	PeerCertificate func(ctx context.Context) (*x509.Certificate, bool)
	// CertificateIdentities lists the certificate identities accepted
	// without a token, with the scopes each is granted. Keys are typed
	// entries as certs.ParseIdentity reads them: "x509-uri:URI",
	// "x509-dns:NAME", "x509-cn:NAME", or without a prefix a URI SAN when
	// the entry contains "://" (spiffe://greeter.local/svc/billing) and a
	// DNS SAN otherwise. A verified certificate none of whose names is
	// listed gets PermissionDenied.
	CertificateIdentities map[string][]string
	// RequireTokenCertMatch accepts a bearer token only on a connection with
	// a verified client certificate to which the token is bound: its "cnf"
	// claim's "x5t#S256" is CertificateThumbprint of that certificate
	// (RFC 8705). Tokens without cnf, with another thumbprint, or on a
	// connection without a client certificate are Unauthenticated.
	RequireTokenCertMatch bool

	// Logger receives key reload events. Nil discards them.
	Logger *slog.Logger
	// OnResult, if set, is called once per authentication with the RPC's
	// context and a Result or Reason constant, for example to count
	// failures by reason; record metrics with ctx so they carry the RPC's
	// trace.
	OnResult func(ctx context.Context, reason string)
}

// Authenticator verifies callers. It is safe for concurrent use. Close it
// to stop refreshing keys.
type Authenticator struct {
	cfg   Config
	algs  []string
	keys  *keyStore
	cache *lru.Cache[[sha256.Size]byte, cachedToken]
	// certScopes maps the keys of the parsed Config.CertificateIdentities
	// to their scopes.
	certScopes map[string][]string
}

type cachedToken struct {
	tok   verifiedToken
	until time.Time
	gen   uint64
}

// New loads the configured keys, starts refreshing them and returns an
// Authenticator; call Close to stop. It fails if the configuration is
// incomplete, the JWKS URL is not allowed, a key file cannot be read, or no
// key could be loaded. ctx bounds the first JWKS URL fetch.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("auth: an issuer is required")
	}
	if len(cfg.Audience) == 0 || slices.Contains(cfg.Audience, "") {
		return nil, errors.New("auth: at least one non-empty audience is required")
	}
	if len(cfg.PublicKeyFiles) == 0 && cfg.JWKSFile == "" && cfg.JWKSURL == "" {
		return nil, errors.New("auth: no key source is configured")
	}
	certScopes, err := parseCertificateIdentities(cfg.CertificateIdentities)
	if err != nil {
		return nil, err
	}
	if cfg.RequireTokenCertMatch && cfg.PeerCertificate == nil {
		return nil, errors.New("auth: RequireTokenCertMatch needs PeerCertificate")
	}
	cfg.Audience = slices.Clone(cfg.Audience)
	setDefault(&cfg.Leeway, DefaultLeeway)
	cfg.Leeway = max(cfg.Leeway, 0)
	setDefault(&cfg.MaxTokenLifetime, DefaultMaxTokenLifetime)
	setDefault(&cfg.CacheTTL, DefaultCacheTTL)
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	keys, err := newKeyStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Authenticator{
		cfg:        cfg,
		algs:       asymmetricAlgs(),
		keys:       keys,
		cache:      lru.New[[sha256.Size]byte, cachedToken](cfg.CacheSize, 0, nil),
		certScopes: certScopes,
	}, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Plugin returns the authentication plugin. Exempt unauthenticated methods
// (health, reflection) with middleware.Skip.
func (a *Authenticator) Plugin() middleware.Plugin {
	return middleware.FromFunc(Name, func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		id, err := a.Authenticate(ctx)
		if err != nil {
			return err
		}
		return next(identity.NewContext(ctx, id))
	})
}

// Authenticate returns the caller of the incoming RPC in ctx, or a status
// error (Unauthenticated, or PermissionDenied for a certificate identity
// that is not allowed).
func (a *Authenticator) Authenticate(ctx context.Context) (identity.Identity, error) {
	id, result, err := a.authenticate(ctx)
	if a.cfg.OnResult != nil {
		a.cfg.OnResult(ctx, result)
	}
	if err != nil {
		return identity.Identity{}, err.err
	}
	return id, nil
}

func (a *Authenticator) authenticate(ctx context.Context) (identity.Identity, string, *failure) {
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	switch {
	case len(vals) == 0:
		return a.certificateIdentity(ctx)
	case len(vals) > 1:
		return fail(errDuplicate)
	}
	v := vals[0]
	if len(v) > a.cfg.MaxHeaderBytes {
		return fail(errHeaderTooLarge)
	}
	// Like go-grpc-middleware's auth.AuthFromMD, which reads only the first
	// value; the count and size checks above come first.
	scheme, token, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "bearer") {
		return fail(errBadScheme)
	}
	// RFC 6750: credentials = "Bearer" 1*SP b64token. Only spaces separate
	// the scheme from the token, and the token is b64token characters only.
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return fail(errMissingToken)
	}
	if !isB64Token(token) {
		return fail(errMalformed)
	}
	if !a.cfg.AllowInsecureTransport {
		p, ok := peer.FromContext(ctx)
		if !ok || credentials.CheckSecurityLevel(p.AuthInfo, credentials.PrivacyAndIntegrity) != nil {
			return fail(errInsecureTransport)
		}
	}
	tok, result, err := a.verifyToken(ctx, token)
	if err != nil {
		var f *failure
		if errors.As(err, &f) {
			return fail(f)
		}
		return fail(errMalformed)
	}
	if a.cfg.RequireTokenCertMatch && !a.boundToPeer(ctx, tok) {
		return fail(errTokenCertMismatch)
	}
	return tok.id, result, nil
}

func fail(f *failure) (identity.Identity, string, *failure) {
	return identity.Identity{}, f.reason, f
}

// Anonymous returns the plugin for servers with authentication switched
// off: every call gets the identity anonymous:<owner> with scopes, so the
// service always finds an identity. Pass authz.AllScopes() to grant
// everything.
func Anonymous(owner string, scopes ...string) middleware.Plugin {
	scopes = slices.Clone(scopes)
	return middleware.FromFunc(Name, func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
		return next(identity.NewContext(ctx, identity.Identity{
			Kind:   identity.KindAnonymous,
			Name:   owner,
			Scopes: slices.Clone(scopes),
		}))
	})
}
