package e2etest

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// ProxyOptions say how a Proxy breaks the connections it forwards.
type ProxyOptions struct {
	// Seed seeds the random numbers that pick where connections are cut,
	// so a failing run can be repeated.
	Seed uint64
	// CutMin and CutMax: each connection, while cuts remain, is cut after
	// a number of bytes (both directions together) drawn uniformly from
	// [CutMin, CutMax]. CutMax 0 cuts nothing.
	CutMin, CutMax int64
	// MaxCuts bounds how many connections get a cut point; the ones after
	// are forwarded whole.
	MaxCuts int
	// StallAfter, when positive, stops forwarding client-to-server bytes
	// once that many went through (over all connections) and closes
	// Stalled. Server-to-client bytes keep flowing; a stalled connection
	// ends when the server closes it or the proxy is closed.
	StallAfter int64
}

// Proxy forwards TCP connections from Addr to a target address, counting
// the bytes in each direction and breaking connections as its options say.
// A connection whose target cannot be reached is closed at once.
type Proxy struct {
	// Addr is the 127.0.0.1 address the proxy listens on.
	Addr string

	target   string
	opts     ProxyOptions
	lis      net.Listener
	up, down atomic.Int64

	mu       sync.Mutex
	rng      *rand.Rand
	assigned int // connections given a cut point
	cuts     int // connections cut
	conns    map[*proxyConn]struct{}
	closed   bool

	stallOnce sync.Once
	stalled   chan struct{}
	wg        sync.WaitGroup
}

// StartProxy starts a proxy to target. It is closed when the test ends.
func StartProxy(t testing.TB, target string, opts ProxyOptions) *Proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		Addr:    lis.Addr().String(),
		target:  target,
		opts:    opts,
		lis:     lis,
		rng:     rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		conns:   map[*proxyConn]struct{}{},
		stalled: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Upstream returns the bytes forwarded from clients to the target.
func (p *Proxy) Upstream() int64 { return p.up.Load() }

// Downstream returns the bytes forwarded from the target to clients.
func (p *Proxy) Downstream() int64 { return p.down.Load() }

// Cuts returns how many connections the proxy cut.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Stalled is closed once StallAfter client-to-server bytes went through.
func (p *Proxy) Stalled() <-chan struct{} { return p.stalled }

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for c := range p.conns {
		c.close()
	}
	p.mu.Unlock()
	p.lis.Close()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.lis.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		c := &proxyConn{p: p, client: client, server: server, budget: -1, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.close()
			return
		}
		if p.opts.CutMax > 0 && p.assigned < p.opts.MaxCuts {
			p.assigned++
			c.budget = p.opts.CutMin + p.rng.Int64N(max(p.opts.CutMax-p.opts.CutMin, 0)+1)
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go c.pipe(server, client, &p.up, true)
		go c.pipe(client, server, &p.down, false)
	}
}

// proxyConn is one forwarded connection.
type proxyConn struct {
	p              *Proxy
	client, server net.Conn
	done           chan struct{}
	closeOnce      sync.Once
	cutOnce        sync.Once

	mu     sync.Mutex
	budget int64 // bytes left before the cut; -1: never
}

// close closes both sides once.
func (c *proxyConn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.client.Close()
		c.server.Close()
	})
}

// take reserves up to n bytes of the connection's budget and reports how
// many may pass and whether the connection is to be cut after them.
func (c *proxyConn) take(n int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.budget < 0 {
		return n, false
	}
	k := int(min(int64(n), c.budget))
	c.budget -= int64(k)
	return k, c.budget == 0
}

// pipe copies src to dst, counting into counter, until either side ends,
// the connection is cut, or (upstream) the proxy stalls.
func (c *proxyConn) pipe(dst, src net.Conn, counter *atomic.Int64, upstream bool) {
	defer c.p.wg.Done()
	defer c.end()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			k, cut := c.take(n)
			stall := false
			if upstream && c.p.opts.StallAfter > 0 {
				left := c.p.opts.StallAfter - counter.Load()
				if int64(k) >= left {
					k, stall = int(max(left, 0)), true
				}
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
			counter.Add(int64(k))
			if stall {
				c.p.stallOnce.Do(func() { close(c.p.stalled) })
				<-c.done
				return
			}
			if cut {
				// Both directions may find the budget spent; count one cut.
				c.cutOnce.Do(func() {
					c.p.mu.Lock()
					c.p.cuts++
					c.p.mu.Unlock()
				})
				return
			}
		}
		if err != nil {
			// EOF, a reset, or the other pipe closed the connection.
			return
		}
	}
}

// end tears the connection down and forgets it.
func (c *proxyConn) end() {
	c.close()
	c.p.mu.Lock()
	delete(c.p.conns, c)
	c.p.mu.Unlock()
}
