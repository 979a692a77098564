package ratelimit_test

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"

	"github.com/greeter/greeter/middleware/ratelimit"
)

// fakeConn is a connection from a given address that records its closing.
type fakeConn struct {
	net.Conn
	remote net.Addr
	closed atomic.Int32
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed.Add(1); return nil }

// fakeListener accepts the connections queued on it, then fails.
type fakeListener struct {
	net.Listener
	queue []*fakeConn
}

var errDrained = errors.New("no more queued connections")

func (l *fakeListener) Accept() (net.Conn, error) {
	if len(l.queue) == 0 {
		return nil, errDrained
	}
	c := l.queue[0]
	l.queue = l.queue[1:]
	return c, nil
}

func (l *fakeListener) push(ip string) *fakeConn {
	c := &fakeConn{remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 50000}}
	l.queue = append(l.queue, c)
	return c
}

// accept wants the next accepted connection to be want.
func accept(t *testing.T, l net.Listener, want *fakeConn) net.Conn {
	t.Helper()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept: got %v, want the connection from %v", err, want.remote)
	}
	if c.RemoteAddr() != want.remote {
		t.Fatalf("Accept: got the connection from %v, want the one from %v", c.RemoteAddr(), want.remote)
	}
	return c
}

// R3, R5: the listener caps open connections per peer, IPv6 peers by
// prefix; a connection over the cap is closed at once and skipped, and a
// closed connection frees its place.
func TestLimitListenerCapsConnectionsPerPeer(t *testing.T) {
	fake := &fakeListener{}
	var rejected atomic.Int32
	l := ratelimit.LimitListener(fake, ratelimit.ListenerOptions{
		MaxConnsPerPeer: 2,
		OnReject:        func() { rejected.Add(1) },
	})

	a1, a2 := fake.push("192.0.2.1"), fake.push("192.0.2.1")
	first := accept(t, l, a1)
	accept(t, l, a2)

	a3, b1 := fake.push("192.0.2.1"), fake.push("192.0.2.2")
	accept(t, l, b1)
	if a3.closed.Load() != 1 {
		t.Errorf("third connection from 192.0.2.1: closed %d times, want 1", a3.closed.Load())
	}

	v1, v2, v3 := fake.push("2001:db8:1:2::1"), fake.push("2001:db8:1:2::2"), fake.push("2001:db8:1:2::3")
	w1 := fake.push("2001:db8:1:3::1")
	accept(t, l, v1)
	accept(t, l, v2)
	accept(t, l, w1)
	if v3.closed.Load() != 1 {
		t.Errorf("third connection from one /64: closed %d times, want 1", v3.closed.Load())
	}
	if got := rejected.Load(); got != 2 {
		t.Errorf("rejected connections: got %d, want 2", got)
	}

	// Closing twice frees one place only.
	first.Close()
	first.Close()
	a4, a5 := fake.push("192.0.2.1"), fake.push("192.0.2.1")
	accept(t, l, a4)
	if _, err := l.Accept(); !errors.Is(err, errDrained) {
		t.Fatalf("Accept after the freed place was taken again: got %v, want %v", err, errDrained)
	}
	if a5.closed.Load() != 1 {
		t.Errorf("connection over the cap after a double close: closed %d times, want 1", a5.closed.Load())
	}
}

// The table of peers is bounded: past MaxPeers a new peer is refused, while
// known peers keep their places.
func TestLimitListenerBoundsItsTable(t *testing.T) {
	fake := &fakeListener{}
	l := ratelimit.LimitListener(fake, ratelimit.ListenerOptions{MaxConnsPerPeer: 5, MaxPeers: 2})
	a, b := fake.push("192.0.2.1"), fake.push("192.0.2.2")
	accept(t, l, a)
	bc := accept(t, l, b)
	c, a2 := fake.push("192.0.2.3"), fake.push("192.0.2.1")
	accept(t, l, a2)
	if c.closed.Load() != 1 {
		t.Errorf("a third peer beyond MaxPeers: closed %d times, want 1", c.closed.Load())
	}
	bc.Close()
	c2 := fake.push("192.0.2.3")
	accept(t, l, c2)
}

// A negative cap leaves the listener as it is.
func TestLimitListenerOff(t *testing.T) {
	fake := &fakeListener{}
	if l := ratelimit.LimitListener(fake, ratelimit.ListenerOptions{MaxConnsPerPeer: -1}); l != net.Listener(fake) {
		t.Errorf("LimitListener with the cap off wrapped the listener")
	}
}
