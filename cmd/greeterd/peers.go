package main

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/greeter/greeter/middleware/ratelimit"
)

// peerConfig holds the limits a client meets before it is authenticated,
// besides the call rate: how a client address is keyed, which proxies may
// name it, how many health and reflection streams it may hold and how many
// connections it may open.
type peerConfig struct {
	ipv6Prefix              int
	trustedProxies          prefixListFlag
	maxPublicStreamsPerPeer int
	maxPublicStreams        int
	maxConnsPerIP           int
}

func (c *peerConfig) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.ipv6Prefix, "ipv6-prefix", ratelimit.DefaultIPv6Prefix, "limit IPv6 clients per network prefix of this length, 1-128 (IPv4 clients per address)")
	fs.Var(&c.trustedProxies, "trusted-proxies", "proxy networks (CIDR or address, comma-separated) whose X-Forwarded-For names the client (default none: the peer is the client)")
	fs.IntVar(&c.maxPublicStreamsPerPeer, "max-public-streams-per-peer", ratelimit.DefaultPublicStreamsPerPeer, "open health Watch and reflection streams per client IP (IPv6: per --ipv6-prefix)")
	fs.IntVar(&c.maxPublicStreams, "max-public-streams", ratelimit.DefaultPublicStreams, "open health Watch and reflection streams of all clients together")
	fs.IntVar(&c.maxConnsPerIP, "max-conns-per-ip", ratelimit.DefaultConnsPerPeer, "open connections per client IP (IPv6: per --ipv6-prefix); behind a proxy this counts the proxy")
}

// check reports settings out of range as usage errors.
func (c *peerConfig) check() error {
	switch {
	case c.ipv6Prefix < 1 || c.ipv6Prefix > 128:
		return usageError{fmt.Errorf("--ipv6-prefix must be between 1 and 128, got %d", c.ipv6Prefix)}
	case c.maxPublicStreamsPerPeer < 1:
		return usageError{fmt.Errorf("--max-public-streams-per-peer must be at least 1, got %d", c.maxPublicStreamsPerPeer)}
	case c.maxPublicStreams < 1:
		return usageError{fmt.Errorf("--max-public-streams must be at least 1, got %d", c.maxPublicStreams)}
	case c.maxConnsPerIP < 1:
		return usageError{fmt.Errorf("--max-conns-per-ip must be at least 1, got %d", c.maxConnsPerIP)}
	}
	return nil
}

// limiterOptions returns o with the per-peer settings: the IPv6 prefix, the
// trusted proxies and the public stream caps.
func (c *peerConfig) limiterOptions(o ratelimit.Options) ratelimit.Options {
	o.IPv6Prefix = c.ipv6Prefix
	o.TrustedProxies = append([]netip.Prefix(nil), c.trustedProxies...)
	o.MaxPublicStreamsPerPeer = c.maxPublicStreamsPerPeer
	o.MaxPublicStreams = c.maxPublicStreams
	return o
}

// listener returns lis capped at --max-conns-per-ip open connections per
// client, keyed as the rate limits key it. It sees the TCP peer, so behind a
// proxy it counts the proxy. onReject is called for each refused connection.
func (c *peerConfig) listener(lis net.Listener, maxPeers int, onReject func()) net.Listener {
	return ratelimit.LimitListener(lis, ratelimit.ListenerOptions{
		MaxConnsPerPeer: c.maxConnsPerIP,
		IPv6Prefix:      c.ipv6Prefix,
		MaxPeers:        maxPeers,
		OnReject:        onReject,
	})
}

// prefixListFlag is the value of --trusted-proxies: networks in CIDR form,
// or single addresses, comma-separated; repeating the flag adds more.
type prefixListFlag []netip.Prefix

func (l *prefixListFlag) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Set parses s and adds its networks.
func (l *prefixListFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		p, err := parsePrefix(v)
		if err != nil {
			return err
		}
		*l = append(*l, p)
	}
	return nil
}

// parsePrefix parses a CIDR or a single address (a /32 or /128). A CIDR with
// host bits set is refused, since it likely says something other than meant.
func parsePrefix(v string) (netip.Prefix, error) {
	if !strings.Contains(v, "/") {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an IP address", v)
		}
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", v)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", v, p.Masked())
	}
	return p, nil
}
