// Package identity carries the authenticated caller of an RPC in its context.
//
// Authentication plugins (JWT, mutual TLS) put an Identity into the context;
// authorization, rate limiting, logging and the service read it back with
// FromContext. No other package defines who the caller is.
package identity

import (
	"context"
	"slices"
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
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the identity carried by ctx, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(contextKey{}).(Identity)
	return id, ok
}
