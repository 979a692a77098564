package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/internal/envflag"
	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/authz"
	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/telemetry"
)

// Dev-mode token claims. A server verifying dev tokens uses the same
// defaults for --jwt-issuer and --jwt-audience.
const (
	defaultIssuer   = "greeterd"
	defaultAudience = "greeter"
)

// chainConfig configures the interceptor chain: authentication,
// authorization and rate limits. Recovery and logging are always on.
type chainConfig struct {
	auth           string
	publicKeys     listFlag
	jwksFile       string
	jwksURL        string
	jwksHTTP       bool
	issuer         string
	audience       listFlag
	leeway         time.Duration
	maxLifetime    time.Duration
	certIdentities listFlag
	// requireBinding is --require-token-cert-match.
	requireBinding bool

	ratePeer, rateUnary, rateTransfer    float64
	burstPeer, burstUnary, burstTransfer int
	maxTransfers                         int
	bandwidth                            envflag.Size
	limiterKeys                          int
	limiterIdle                          time.Duration
	// limits is the per-identity limits' state, set from --redis-url; nil
	// keeps it in this process.
	limits coordination.Limits

	closeAuth func() // set by build
}

func (c *chainConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.auth, "auth", "", "authentication: jwt (bearer tokens, and certificates listed in --cert-identity) or none (default: jwt; none with --plaintext)")
	fs.Var(&c.publicKeys, "jwt-public-key", "PEM public key(s) that verify tokens, comma-separated; reloaded when changed (dev mode: <state-dir>/jwt-public-key.pem)")
	fs.StringVar(&c.jwksFile, "jwt-jwks-file", "", "JWK Set file that verifies tokens; reloaded when changed")
	fs.StringVar(&c.jwksURL, "jwt-jwks-url", "", "https:// JWK Set URL that verifies tokens; refreshed hourly and on unknown key ids (at most every 5m)")
	fs.BoolVar(&c.jwksHTTP, "jwt-jwks-insecure-http", false, "accept an http:// --jwt-jwks-url (anyone on the path can swap the keys: tests and loopback IdPs only)")
	fs.StringVar(&c.issuer, "jwt-issuer", defaultIssuer, "required token issuer (iss)")
	c.audience = listFlag{defaultAudience}
	fs.Var(&c.audience, "jwt-audience", "accepted token audiences (aud), comma-separated")
	fs.DurationVar(&c.leeway, "jwt-leeway", auth.DefaultLeeway, "clock skew tolerated on exp, nbf and iat (0: none)")
	fs.DurationVar(&c.maxLifetime, "jwt-max-lifetime", auth.DefaultMaxTokenLifetime, "longest accepted token lifetime (exp - iat)")
	fs.Var(&c.certIdentities, "cert-identity", "certificate identity allowed without a token, with scopes: ID=scope+scope (repeatable), e.g. spiffe://greeter.local/svc/billing=files:read+files:write; "+
		"ID is x509-uri:URI, x509-dns:NAME or x509-cn:NAME, or without a prefix a URI SAN if it contains :// and a DNS SAN otherwise (a common name counts only as x509-cn:)")
	fs.BoolVar(&c.requireBinding, "require-token-cert-match", false, "accept a bearer token only on a connection with a verified client certificate that the token is bound to (cnf x5t#S256, RFC 8705; mint one with greeterd token --cnf-cert)")

	fs.Float64Var(&c.ratePeer, "rate-peer", ratelimit.DefaultPeerPerSecond, "calls per second per client IP, checked before authentication")
	fs.IntVar(&c.burstPeer, "rate-peer-burst", ratelimit.DefaultPeerBurst, "burst of --rate-peer")
	fs.Float64Var(&c.rateUnary, "rate-unary", ratelimit.DefaultUnaryPerSecond, "unary calls per second per identity")
	fs.IntVar(&c.burstUnary, "rate-unary-burst", ratelimit.DefaultUnaryBurst, "burst of --rate-unary")
	fs.Float64Var(&c.rateTransfer, "rate-transfer", ratelimit.DefaultTransferPerSecond, "uploads and downloads started per second per identity")
	fs.IntVar(&c.burstTransfer, "rate-transfer-burst", ratelimit.DefaultTransferBurst, "burst of --rate-transfer")
	fs.IntVar(&c.maxTransfers, "max-transfers-per-identity", ratelimit.DefaultMaxConcurrentTransfers, "concurrent uploads and downloads per identity")
	fs.Var(&c.bandwidth, "bandwidth-per-identity", "bytes per second one identity's transfers may move, throttled not failed (0: unlimited)")
	fs.IntVar(&c.limiterKeys, "limiter-max-keys", ratelimit.DefaultMaxKeys, "most keys each in-process limiter table remembers (peers; up to four per identity)")
	fs.DurationVar(&c.limiterIdle, "limiter-idle-ttl", ratelimit.DefaultIdleTTL, "forget a limiter key unused for this long")
}

// checkJWKSURL rejects a --jwt-jwks-url that is not https:// (or http://
// with --jwt-jwks-insecure-http).
func (c *chainConfig) checkJWKSURL() error {
	if c.jwksURL == "" {
		return nil
	}
	err := auth.CheckJWKSURL(c.jwksURL, c.jwksHTTP)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, auth.ErrInsecureJWKSURL) && strings.HasPrefix(strings.ToLower(c.jwksURL), "http:"):
		return usageError{fmt.Errorf("--jwt-jwks-url: %v; add --jwt-jwks-insecure-http to accept http:// anyway", err)}
	}
	return usageError{fmt.Errorf("--jwt-jwks-url: %v", err)}
}

// close stops what build started: the key refresher of --auth=jwt.
func (c *chainConfig) close() {
	if c.closeAuth != nil {
		c.closeAuth()
	}
}

// certIdentityMap parses --cert-identity values. Each ID must be a typed
// certificate identity (certs.ParseIdentity), named once.
func (c *chainConfig) certIdentityMap() (map[string][]string, error) {
	out := map[string][]string{}
	seen := map[string]bool{}
	for _, v := range c.certIdentities {
		entry, scopes, ok := strings.Cut(v, "=")
		if !ok || entry == "" {
			return nil, usageError{fmt.Errorf("--cert-identity %q: want ID=scope+scope", v)}
		}
		id, err := certs.ParseIdentity(entry)
		if err != nil {
			return nil, usageError{fmt.Errorf("--cert-identity: %v", err)}
		}
		if seen[id.Key()] {
			return nil, usageError{fmt.Errorf("--cert-identity: %s is listed twice", id.Key())}
		}
		seen[id.Key()] = true
		out[entry] = strings.FieldsFunc(scopes, func(r rune) bool { return r == '+' || r == ' ' })
	}
	return out, nil
}

// authMode returns the authentication mode: --auth, or by default jwt (none
// with --plaintext).
func (c *chainConfig) authMode(sec *security) (string, error) {
	switch c.auth {
	case "jwt", "none":
		return c.auth, nil
	case "":
		if sec.mode == "plaintext" {
			return "none", nil
		}
		return "jwt", nil
	}
	return "", usageError{fmt.Errorf("--auth must be jwt or none, got %q", c.auth)}
}

// checkBinding refuses --require-token-cert-match where no token could ever
// pass it: without token authentication, or without client certificates.
func (c *chainConfig) checkBinding(mode string, sec *security) error {
	switch {
	case !c.requireBinding:
		return nil
	case mode != "jwt":
		return usageError{errors.New("--require-token-cert-match needs --auth=jwt")}
	case sec.mode != "dev" && !strings.HasPrefix(sec.mode, "mtls"):
		return usageError{errors.New("--require-token-cert-match needs client certificates (--client-ca)")}
	}
	return nil
}

// serviceDefaultOwner returns the service's DefaultOwner: the default owner
// when authentication is off, and "" otherwise, so that with --auth=jwt a
// call that reaches the service without an identity is Unauthenticated
// instead of landing in a shared namespace (fail closed).
func (c *chainConfig) serviceDefaultOwner(sec *security, defaultOwner string) string {
	if mode, err := c.authMode(sec); err == nil && mode == "none" {
		return defaultOwner
	}
	return ""
}

// legacyOwnerKey returns the mapping from the untyped owners of a data
// directory written before identities were typed to their typed keys, for
// diskstore's one-time migration: with --auth=none every owner was the
// anonymous default owner (anonymous:<owner>); otherwise an owner that is
// the name of a --cert-identity entry was that certificate identity (the
// first in URI, DNS, CN order when several entries share the name), and any
// other owner was a token subject of the configured issuer
// (jwt:<issuer>:<owner>).
func (c *chainConfig) legacyOwnerKey(sec *security) (func(owner string) string, error) {
	mode, err := c.authMode(sec)
	if err != nil {
		return nil, err
	}
	if mode == "none" {
		return func(owner string) string {
			return identity.Identity{Kind: identity.KindAnonymous, Name: owner}.Key()
		}, nil
	}
	entries, err := c.certIdentityMap()
	if err != nil {
		return nil, err
	}
	rank := map[identity.Kind]int{identity.KindX509URI: 0, identity.KindX509DNS: 1, identity.KindX509CN: 2}
	byName := map[string]identity.Identity{}
	for entry := range entries {
		id, _ := certs.ParseIdentity(entry) // checked by certIdentityMap
		if prev, ok := byName[id.Name]; !ok || rank[id.Kind] < rank[prev.Kind] {
			byName[id.Name] = id
		}
	}
	issuer := c.issuer
	return func(owner string) string {
		if id, ok := byName[owner]; ok {
			return id.Key()
		}
		return identity.Identity{Kind: identity.KindJWT, Issuer: issuer, Name: owner}.Key()
	}, nil
}

// build returns greeterd's chain (see middleware/standard): the transport
// credentials of sec and the stats handler come first, as server options,
// then the interceptors. With --auth=jwt and no key source configured, it
// verifies tokens with the dev key of sec (dev mode). ctx bounds the first
// JWKS fetch; every hook records metrics with its RPC's context.
func (c *chainConfig) build(ctx context.Context, sec *security, stats stats.Handler, defaultOwner string, log *slog.Logger, metrics *telemetry.Metrics, peers *peerConfig) (*middleware.Chain, error) {
	var authPlugin middleware.Plugin
	mode, err := c.authMode(sec)
	if err != nil {
		return nil, err
	}
	if err := c.checkBinding(mode, sec); err != nil {
		return nil, err
	}
	switch mode {
	case "none":
		log.Warn("authentication is off: every caller acts as the default owner with every scope", slog.String("owner", defaultOwner))
		authPlugin = auth.Anonymous(defaultOwner, authz.AllScopes()...)
	case "jwt":
		keys := []string(c.publicKeys)
		if len(keys) == 0 && c.jwksFile == "" && c.jwksURL == "" {
			if sec.dev == nil {
				return nil, usageError{fmt.Errorf("--auth=jwt needs --jwt-public-key, --jwt-jwks-file or --jwt-jwks-url (or --auth=none)")}
			}
			keys = []string{sec.dev.JWTPublicKey}
		}
		ids, err := c.certIdentityMap()
		if err != nil {
			return nil, err
		}
		if err := c.checkJWKSURL(); err != nil {
			return nil, err
		}
		leeway := c.leeway
		if leeway == 0 {
			leeway = -1 // auth: zero means its default, a negative leeway none
		}
		a, err := auth.New(ctx, auth.Config{
			PublicKeyFiles:         keys,
			JWKSFile:               c.jwksFile,
			JWKSURL:                c.jwksURL,
			AllowInsecureJWKSURL:   c.jwksHTTP,
			Issuer:                 c.issuer,
			Audience:               c.audience,
			Leeway:                 leeway,
			MaxTokenLifetime:       c.maxLifetime,
			AllowInsecureTransport: sec.mode == "plaintext",
			PeerCertificate:        certs.PeerCertificate,
			CertificateIdentities:  ids,
			RequireTokenCertMatch:  c.requireBinding,
			Logger:                 log,
			OnResult:               func(ctx context.Context, reason string) { countAuthResult(ctx, metrics, reason) },
		})
		if err != nil {
			return nil, fmt.Errorf("authentication: %w", err)
		}
		c.closeAuth = a.Close
		authPlugin = a.Plugin()
	}

	bandwidth := int64(c.bandwidth)
	if bandwidth == 0 {
		bandwidth = -1 // ratelimit: a negative bandwidth means unlimited
	}
	limiter := ratelimit.New(peers.limiterOptions(ratelimit.Options{
		PerPeer:                ratelimit.Rate{PerSecond: c.ratePeer, Burst: c.burstPeer},
		Unary:                  ratelimit.Rate{PerSecond: c.rateUnary, Burst: c.burstUnary},
		Transfer:               ratelimit.Rate{PerSecond: c.rateTransfer, Burst: c.burstTransfer},
		MaxConcurrentTransfers: c.maxTransfers,
		Bandwidth:              bandwidth,
		MaxKeys:                c.limiterKeys,
		IdleTTL:                c.limiterIdle,
		Limits:                 c.limits,
		OnReject:               func(ctx context.Context, reason string) { metrics.RateLimited(ctx, rateLimitReasons[reason]) },
	}))
	return standard.Chain(standard.Config{
		Logger:  log,
		Auth:    authPlugin,
		Limiter: limiter,
		OnDeny: func(ctx context.Context, _, _ string) {
			metrics.AuthFailed(ctx, telemetry.AuthPermissionDenied)
		},
		Outer: []middleware.Plugin{
			sec.plugin(),
			{Name: "telemetry", ServerOptions: []grpc.ServerOption{grpc.StatsHandler(stats)}},
		},
	}), nil
}

// rateLimitReasons maps the limiter's reasons onto the metric's fixed set;
// a reason missing here is counted as telemetry.RateLimitOther.
var rateLimitReasons = map[string]telemetry.RateLimitReason{
	ratelimit.ReasonPeer:        telemetry.RateLimitRate,
	ratelimit.ReasonUnary:       telemetry.RateLimitRate,
	ratelimit.ReasonTransfer:    telemetry.RateLimitRate,
	ratelimit.ReasonConcurrency: telemetry.RateLimitConcurrency,
	// A peer's public streams are a concurrency cap; all peers' together
	// are the server's capacity.
	ratelimit.ReasonPublicStream:       telemetry.RateLimitConcurrency,
	ratelimit.ReasonPublicStreamGlobal: telemetry.RateLimitGlobal,
}

// authReasons maps the auth plugin's reasons onto the metric's fixed set.
var authReasons = map[string]telemetry.AuthFailureReason{
	auth.ReasonMissingToken:          telemetry.AuthMissingCredentials,
	auth.ReasonBadScheme:             telemetry.AuthMalformedToken,
	auth.ReasonDuplicate:             telemetry.AuthMalformedToken,
	auth.ReasonHeaderTooLarge:        telemetry.AuthMalformedToken,
	auth.ReasonMalformed:             telemetry.AuthMalformedToken,
	auth.ReasonAlgNotAllowed:         telemetry.AuthBadSignature,
	auth.ReasonBadSignature:          telemetry.AuthBadSignature,
	auth.ReasonUnknownKID:            telemetry.AuthUnknownKey,
	auth.ReasonExpired:               telemetry.AuthExpired,
	auth.ReasonNotYetValid:           telemetry.AuthNotYetValid,
	auth.ReasonBadIssuer:             telemetry.AuthWrongIssuer,
	auth.ReasonBadAudience:           telemetry.AuthWrongAudience,
	auth.ReasonCertificateNotAllowed: telemetry.AuthBadCertificate,
	auth.ReasonTokenCertMismatch:     telemetry.AuthBadCertificate,
}

func countAuthResult(ctx context.Context, m *telemetry.Metrics, reason string) {
	switch reason {
	case auth.ResultVerified, auth.ResultCached, auth.ResultCertificate:
		return
	}
	r, ok := authReasons[reason]
	if !ok {
		r = telemetry.AuthOther
	}
	m.AuthFailed(ctx, r)
}
