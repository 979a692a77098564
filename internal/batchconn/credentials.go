package batchconn

import (
	"context"
	"net"

	"google.golang.org/grpc/credentials"
)

// Credentials returns creds, TLS transport credentials, with each
// connection's handshake made over Raw and the connection returned Secure.
func Credentials(creds credentials.TransportCredentials) credentials.TransportCredentials {
	return tlsCreds{creds}
}

type tlsCreds struct {
	credentials.TransportCredentials
}

func (c tlsCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	r := Raw(conn)
	tc, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, r)
	if err != nil {
		return nil, nil, err
	}
	return Secure(tc, r), info, nil
}

func (c tlsCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	r := Raw(conn)
	tc, info, err := c.TransportCredentials.ServerHandshake(r)
	if err != nil {
		return nil, nil, err
	}
	return Secure(tc, r), info, nil
}

func (c tlsCreds) Clone() credentials.TransportCredentials {
	return tlsCreds{c.TransportCredentials.Clone()}
}
