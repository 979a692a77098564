package ratelimit

import (
	"context"
	"net"
	"net/netip"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/realip"
	"google.golang.org/grpc/peer"

	"github.com/greeter/greeter/middleware"
)

// RealIPName is the name of the client address plugin in a chain.
const RealIPName = "realip"

// DefaultIPv6Prefix is the prefix length that keys an IPv6 peer: one /64 is
// what a single subscriber or host is usually given, so rotating addresses
// inside it must not buy a fresh budget.
const DefaultIPv6Prefix = 64

// PeerKey returns the key under which every per-peer limit counts a client
// address: an IPv4 address as itself (a /32), an IPv6 address masked to its
// first ipv6Prefix bits and written as a prefix ("2001:db8:1:2::/64"). An
// IPv4-mapped IPv6 address is keyed as the IPv4 address, and a zone is
// dropped. An ipv6Prefix of zero or less means DefaultIPv6Prefix; more than
// 128 means 128. The per-peer call rate, the public stream cap and the
// listener's connection cap all key peers with it.
func PeerKey(addr netip.Addr, ipv6Prefix int) string {
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	if ipv6Prefix <= 0 {
		ipv6Prefix = DefaultIPv6Prefix
	}
	p, err := addr.Prefix(min(ipv6Prefix, 128))
	if err != nil {
		// Not an IP address at all (the zero Addr).
		return "unknown"
	}
	return p.String()
}

// addrOf returns the IP address of a network address, if it has one.
func addrOf(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case nil:
		return netip.Addr{}, false
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// RealIP returns the plugin that finds the client's address: the peer's
// own, or, when the peer is one of Options.TrustedProxies, the rightmost
// X-Forwarded-For entry that is not a trusted proxy. Place it before
// PerPeer, which keys every per-peer limit on that address. Without trusted
// proxies it does nothing: the peer's address is the client's.
//
// The resolution is go-grpc-middleware's realip; it reads the first
// X-Forwarded-For header only, so the proxy must append to the header it
// received (as nginx's $proxy_add_x_forwarded_for and Envoy do) rather than
// add a second one. A listener cannot see past the proxy: a connection cap
// there counts the proxy's address.
func (l *Limiter) RealIP() middleware.Plugin {
	p := middleware.Plugin{Name: RealIPName}
	if len(l.o.TrustedProxies) == 0 {
		return p
	}
	opts := []realip.Option{
		realip.WithTrustedPeers(l.o.TrustedProxies),
		realip.WithTrustedProxies(l.o.TrustedProxies),
		realip.WithHeaders([]string{realip.XForwardedFor}),
	}
	p.Unary = realip.UnaryServerInterceptorOpts(opts...)
	p.Stream = realip.StreamServerInterceptorOpts(opts...)
	return p
}

// peerKeyCtx is the context key of the peer key PerPeer computed.
type peerKeyCtx struct{}

// withPeerKey returns ctx carrying the caller's peer key under the limiter's
// IPv6 prefix, so that later plugins key the caller the same way.
func (l *Limiter) withPeerKey(ctx context.Context) (context.Context, string) {
	key := keyOf(ctx, l.o.IPv6Prefix)
	return context.WithValue(ctx, peerKeyCtx{}, key), key
}

// keyOf keys the client's address: the one RealIP found, else the peer's.
// A peer without an IP address (an in-memory or Unix socket) is keyed by
// its address string.
func keyOf(ctx context.Context, ipv6Prefix int) string {
	if addr, ok := realip.FromContext(ctx); ok {
		return PeerKey(addr, ipv6Prefix)
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	if addr, ok := addrOf(p.Addr); ok {
		return PeerKey(addr, ipv6Prefix)
	}
	return p.Addr.String()
}
