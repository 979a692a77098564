// Package identity carries the authenticated caller of an RPC in its context.
//
// Authentication plugins (JWT, mutual TLS) put an Identity into the context;
// authorization, rate limiting, logging and the service read it back with
// FromContext. No other package defines who the caller is.
//
// Identities are typed: a token's subject, a certificate's URI SAN, DNS SAN
// and common name, and the anonymous default owner are different kinds of
// name, and Key keeps them apart, so that no kind of credential can claim a
// name that another kind established. Key is the only place an owner key is
// derived from an identity.
package identity

import (
	"context"
	"slices"
	"sync"
)

// Kind says how an identity was established, and so which namespace its
// Name lives in.
type Kind string

const (
	// KindJWT is a verified bearer token (JWT): Issuer is its "iss" and Name
	// its "sub".
	KindJWT Kind = "jwt"
	// KindX509URI is the one URI SAN (such as a SPIFFE ID) of a verified
	// client certificate.
	KindX509URI Kind = "x509-uri"
	// KindX509DNS is a DNS SAN of a verified client certificate.
	KindX509DNS Kind = "x509-dns"
	// KindX509CN is the subject common name of a verified client
	// certificate. It names a caller only where an operator listed it
	// explicitly.
	KindX509CN Kind = "x509-cn"
	// KindAnonymous is the configured default owner of a server with
	// authentication switched off.
	KindAnonymous Kind = "anonymous"
)

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool {
	switch k {
	case KindJWT, KindX509URI, KindX509DNS, KindX509CN, KindAnonymous:
		return true
	}
	return false
}

// Identity is an authenticated caller.
type Identity struct {
	// Kind says how the identity was established.
	Kind Kind
	// Issuer is the verified "iss" of a KindJWT identity; empty for every
	// other kind.
	Issuer string
	// Name names the caller within its Kind: a token's "sub", a
	// certificate's URI, DNS name or common name, or the default owner.
	Name string
	// Scopes are the permissions granted to the caller (for example
	// "files:read"). A nil slice grants nothing.
	Scopes []string
}

// Key returns the canonical owner key of the identity, the namespace of
// its files and the key of its limits:
//
//	jwt:<iss>:<sub>
//	x509-uri:<uri>
//	x509-dns:<name>
//	x509-cn:<cn>
//	anonymous:<name>
//
// The kinds never share a prefix, so two identities of different kinds
// never share a key. An issuer may itself contain ":", so a jwt key cannot
// be split back into issuer and subject; it does not need to be, and it is
// unambiguous because a server accepts exactly one issuer.
//
// Key returns "" for an identity without a valid Kind and a Name (or, for
// KindJWT, an Issuer): such an identity names no owner.
func (id Identity) Key() string {
	switch {
	case !id.Kind.Valid() || id.Name == "":
		return ""
	case id.Kind == KindJWT:
		if id.Issuer == "" {
			return ""
		}
		return string(KindJWT) + ":" + id.Issuer + ":" + id.Name
	default:
		return string(id.Kind) + ":" + id.Name
	}
}

// String returns Key.
func (id Identity) String() string { return id.Key() }

// HasScope reports whether the identity was granted scope.
func (id Identity) HasScope(scope string) bool {
	return slices.Contains(id.Scopes, scope)
}

type contextKey struct{}

// NewContext returns a copy of ctx that carries id.
//
// If ctx descends from a context returned by WithObserver, id is also
// recorded there, so that layers running outside the one that authenticated
// the caller (logging, panic recovery) can report who it was.
func NewContext(ctx context.Context, id Identity) context.Context {
	if o, ok := ctx.Value(observerKey{}).(*observer); ok {
		o.set(id)
	}
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the identity carried by ctx, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(contextKey{}).(Identity)
	return id, ok
}

type observerKey struct{}

// observer records the latest identity attached below the context that
// installed it. It is shared by every layer of one RPC.
type observer struct {
	mu    sync.Mutex
	id    Identity
	isSet bool
}

func (o *observer) set(id Identity) {
	o.mu.Lock()
	o.id, o.isSet = id, true
	o.mu.Unlock()
}

func (o *observer) get() (Identity, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.id, o.isSet
}

// WithObserver returns a copy of ctx in which every later NewContext call on
// a descendant context records its identity, for Observed to report. If ctx
// already carries an observer, ctx is returned unchanged, so nested layers
// share one record.
func WithObserver(ctx context.Context) context.Context {
	if _, ok := ctx.Value(observerKey{}).(*observer); ok {
		return ctx
	}
	return context.WithValue(ctx, observerKey{}, &observer{})
}

// Observed returns the identity carried by ctx or, failing that, the most
// recent identity that NewContext attached to a context descending from the
// observer installed by WithObserver. It is safe for concurrent use.
func Observed(ctx context.Context) (Identity, bool) {
	if id, ok := FromContext(ctx); ok {
		return id, true
	}
	if o, ok := ctx.Value(observerKey{}).(*observer); ok {
		return o.get()
	}
	return Identity{}, false
}
