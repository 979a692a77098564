package ratelimit_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/ratelimit"
)

// once allows one call per key: the bucket holds one token and practically
// never refills, so a second call under the same key is refused.
var once = ratelimit.Rate{PerSecond: 1e-9, Burst: 1}

// fromPeer returns a context whose peer is ip (with some port) and whose
// incoming metadata holds an X-Forwarded-For header xff, unless empty.
func fromPeer(t *testing.T, ip, xff string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	addr := net.ParseIP(ip)
	if addr == nil {
		t.Fatalf("bad test address %q", ip)
	}
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: addr, Port: 40000}})
	if xff != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("x-forwarded-for", xff))
	}
	return ctx
}

// unary runs a unary SayHello through plugins, outermost first, to a
// handler that succeeds.
func unary(ctx context.Context, plugins ...middleware.Plugin) error {
	info := &grpc.UnaryServerInfo{FullMethod: "/Greeter/SayHello"}
	h := grpc.UnaryHandler(func(context.Context, any) (any, error) { return "ok", nil })
	for i := len(plugins) - 1; i >= 0; i-- {
		in, next := plugins[i].Unary, h
		if in == nil {
			continue
		}
		h = func(ctx context.Context, req any) (any, error) { return in(ctx, req, info, next) }
	}
	_, err := h(ctx, nil)
	return err
}

func TestPeerKey(t *testing.T) {
	tests := []struct {
		addr   string
		prefix int
		want   string
	}{
		{"192.0.2.1", 64, "192.0.2.1"},
		{"::ffff:192.0.2.1", 64, "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"},
		{"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6/128"},
		{"2001:db8:1:2:3:4:5:6", 0, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 200, "2001:db8:1:2:3:4:5:6/128"},
		{"fe80::1%eth0", 64, "fe80::/64"},
	}
	for _, tc := range tests {
		if got := ratelimit.PeerKey(netip.MustParseAddr(tc.addr), tc.prefix); got != tc.want {
			t.Errorf("PeerKey(%s, %d): got %q, want %q", tc.addr, tc.prefix, got, tc.want)
		}
	}
}

// R5: addresses rotated inside one IPv6 prefix share one per-peer bucket;
// the prefix length is configurable and IPv4 stays per address.
func TestPerPeerLimitKeysIPv6ByPrefix(t *testing.T) {
	tests := []struct {
		name   string
		prefix int
		calls  []string // the first call of a key passes, later ones are refused
		ok     []bool
	}{
		{
			name:   "default /64",
			calls:  []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:3::1", "192.0.2.1", "192.0.2.2"},
			ok:     []bool{true, false, true, true, true},
			prefix: 0,
		},
		{
			name:   "/48",
			prefix: 48,
			calls:  []string{"2001:db8:1:2::1", "2001:db8:1:3::1", "2001:db8:1:ffff::1", "2001:db8:2::1"},
			ok:     []bool{true, false, false, true},
		},
		{
			name:   "/128",
			prefix: 128,
			calls:  []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::1"},
			ok:     []bool{true, true, false},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := ratelimit.New(ratelimit.Options{PerPeer: once, IPv6Prefix: tc.prefix})
			for i, ip := range tc.calls {
				err := unary(fromPeer(t, ip, ""), l.PerPeer())
				if got := err == nil; got != tc.ok[i] {
					t.Errorf("call %d from %s: got %v, want refused=%v", i+1, ip, err, !tc.ok[i])
				}
				if err != nil && status.Code(err) != codes.ResourceExhausted {
					t.Errorf("call %d from %s: got %v, want ResourceExhausted", i+1, ip, err)
				}
			}
		})
	}
}

// R5: X-Forwarded-For names the client only when the peer is a trusted
// proxy; anyone else's header is ignored and the peer itself is keyed.
func TestTrustedProxyHeaderHonouredOnlyFromTrustedPeer(t *testing.T) {
	l := ratelimit.New(ratelimit.Options{
		PerPeer:        once,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	})
	chain := []middleware.Plugin{l.RealIP(), l.PerPeer()}
	steps := []struct {
		peer, xff string
		ok        bool
		why       string
	}{
		{"10.0.0.1", "198.51.100.7", true, "first call of client .7 through the proxy"},
		{"10.0.0.2", "198.51.100.7", false, "client .7 again, through another trusted proxy"},
		{"10.0.0.1", "198.51.100.8", true, "another client through the same proxy"},
		{"10.0.0.1", "198.51.100.20, 10.0.0.9", true, "trusted hops are skipped from the right"},
		{"10.0.0.1", "198.51.100.20", false, "so that was client .20"},
		{"203.0.113.5", "198.51.100.9", true, "untrusted peer: keyed by its own address"},
		{"203.0.113.5", "198.51.100.10", false, "a new header buys an untrusted peer nothing"},
		{"10.0.0.3", "198.51.100.9", true, "the spoofed .9 was never charged"},
		{"2001:db8::1", "198.51.100.11", true, "untrusted IPv6 peer"},
		{"2001:db8::2", "198.51.100.12", false, "same /64, header ignored"},
	}
	for i, s := range steps {
		err := unary(fromPeer(t, s.peer, s.xff), chain...)
		if got := err == nil; got != s.ok {
			t.Errorf("step %d (%s): from %s with X-Forwarded-For %q: got %v, want refused=%v", i+1, s.why, s.peer, s.xff, err, !s.ok)
		}
	}
}

// Without trusted proxies the header is never read.
func TestRealIPWithoutTrustedProxiesIgnoresHeader(t *testing.T) {
	l := ratelimit.New(ratelimit.Options{PerPeer: once})
	if p := l.RealIP(); p.Unary != nil || p.Stream != nil {
		t.Fatalf("RealIP without trusted proxies installs interceptors")
	}
	chain := []middleware.Plugin{l.RealIP(), l.PerPeer()}
	if err := unary(fromPeer(t, "10.0.0.1", "198.51.100.7"), chain...); err != nil {
		t.Fatalf("first call: %v", err)
	}
	if err := unary(fromPeer(t, "10.0.0.1", "198.51.100.8"), chain...); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("same peer, other header: got %v, want ResourceExhausted", err)
	}
}
