package ratelimit

import (
	"net"
	"sync"
)

// DefaultConnsPerPeer is the default of ListenerOptions.MaxConnsPerPeer.
const DefaultConnsPerPeer = 64

// ListenerOptions configure LimitListener. Zero fields take the documented
// defaults.
type ListenerOptions struct {
	// MaxConnsPerPeer caps the open connections of one peer (see PeerKey).
	// Default 64; negative switches the cap off.
	MaxConnsPerPeer int
	// IPv6Prefix keys IPv6 peers, as Options.IPv6Prefix. Default 64.
	IPv6Prefix int
	// MaxPeers caps the peers with open connections that are tracked; a
	// connection from a new peer beyond it is refused. Default 100 000.
	MaxPeers int
	// OnReject, if set, is called for every refused connection, for
	// example to count them. It must not block.
	OnReject func()
}

// LimitListener returns l with at most o.MaxConnsPerPeer connections open
// per peer. Accept closes a connection over the cap as soon as it is
// accepted, before any TLS handshake, and waits for the next one; a
// connection's place is freed when it is closed. Connections without an IP
// address (Unix sockets, in-memory pipes) are not limited.
//
// Behind a proxy every connection comes from the proxy's address: the cap
// then limits the proxy, not its clients (RealIP resolves those per RPC,
// which a listener cannot).
//
// It is written here rather than with golang.org/x/net/netutil's
// LimitListener because that one caps the total number of connections, not
// those of one address.
func LimitListener(l net.Listener, o ListenerOptions) net.Listener {
	if o.MaxConnsPerPeer == 0 {
		o.MaxConnsPerPeer = DefaultConnsPerPeer
	}
	if o.MaxConnsPerPeer < 0 {
		return l
	}
	if o.MaxPeers <= 0 {
		o.MaxPeers = DefaultMaxKeys
	}
	return &peerListener{Listener: l, o: o, open: map[string]int{}}
}

// peerListener counts open connections per peer key.
type peerListener struct {
	net.Listener
	o ListenerOptions

	mu   sync.Mutex
	open map[string]int // no zero entries, at most o.MaxPeers keys
}

// Accept returns the next connection within the cap, closing those over it.
func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr, ok := addrOf(c.RemoteAddr())
		if !ok {
			return c, nil
		}
		key := PeerKey(addr, l.o.IPv6Prefix)
		if l.acquire(key) {
			return &peerConn{Conn: c, release: sync.OnceFunc(func() { l.release(key) })}, nil
		}
		c.Close()
		if l.o.OnReject != nil {
			l.o.OnReject()
		}
	}
}

func (l *peerListener) acquire(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, known := l.open[key]
	if n >= l.o.MaxConnsPerPeer || (!known && len(l.open) >= l.o.MaxPeers) {
		return false
	}
	l.open[key] = n + 1
	return true
}

func (l *peerListener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.open[key] - 1; n > 0 {
		l.open[key] = n
	} else {
		delete(l.open, key)
	}
}

// peerConn frees its peer's place when closed (once, however often Close is
// called).
type peerConn struct {
	net.Conn
	release func()
}

func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
