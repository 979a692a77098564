package client

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// tokenCredentials sends a bearer token with every RPC.
type tokenCredentials struct {
	token func(ctx context.Context) (string, error)
}

// BearerToken returns credentials that send "authorization: Bearer token"
// with every RPC. They require transport security: a connection without
// TLS fails every RPC instead of sending the token in the clear.
func BearerToken(token string) credentials.PerRPCCredentials {
	return tokenCredentials{token: func(context.Context) (string, error) { return token, nil }}
}

// TokenSource is BearerToken with a token obtained for each RPC, for
// example from a refreshing cache. An error from source fails the RPC; it
// should be a status error (Unauthenticated).
func TokenSource(source func(ctx context.Context) (string, error)) credentials.PerRPCCredentials {
	return tokenCredentials{token: source}
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c tokenCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return nil, status.Error(codes.Unauthenticated, "no bearer token configured")
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. It is
// always true.
func (tokenCredentials) RequireTransportSecurity() bool { return true }
