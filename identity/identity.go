// Package identity carries the authenticated caller of an RPC in its context.
//
// Authentication plugins (JWT, mutual TLS) put an Identity into the context;
// authorization, rate limiting, logging and the service read it back with
// FromContext. No other package defines who the caller is.
package identity

import (
	"context"
	"slices"
	"sync"
)

// Source says how an identity was established.
type Source int

const (
	// SourceToken means a verified bearer token (JWT) named the caller.
	SourceToken Source = iota + 1
	// SourceCertificate means a verified client certificate named the caller.
	SourceCertificate
	// SourceAnonymous means authentication is switched off and the caller is
	// the configured default owner.
	SourceAnonymous
)

// String returns the lowercase name of the source.
func (s Source) String() string {
	switch s {
	case SourceToken:
		return "token"
	case SourceCertificate:
		return "certificate"
	case SourceAnonymous:
		return "anonymous"
	default:
		return "unknown"
	}
}

// Identity is an authenticated caller.
type Identity struct {
	// Subject names the caller: a JWT "sub", or a certificate's SPIFFE ID,
	// DNS name or common name. It is also the owner of the caller's files.
	Subject string
	// Source says how Subject was established.
	Source Source
	// Scopes are the permissions granted to the caller (for example
	// "files:read"). A nil slice grants nothing.
	Scopes []string
}

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
