// Package batchconn makes a TLS connection cheaper per byte on a bulk
// transfer by making fewer system calls under it.
//
// crypto/tls writes each record (at most 16 KiB) with a write(2) of its own,
// and reads about one record per read(2); it has no option to do otherwise.
// Profiles of greeter's transfers (docs/storage.md) spent as much CPU in
// those system calls as in AES-GCM. Raw puts a connection under tls.Conn
// that reads ahead in large reads, from which the records are served, and
// Secure wraps the TLS connection so that the records of one Write go out
// in one write(2). Credentials does both for gRPC, DialTLS for
// http.Transport.
//
// The buffers come from pools and are held only while they hold bytes, so
// an idle connection costs none, and one whose peer stops mid-record holds
// a buffer of one record, as crypto/tls itself would.
package batchconn

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// bufSize is the size of a read-ahead buffer and of the largest Write
// ReadFrom makes: 16 TLS records' worth of bytes.
const bufSize = 256 << 10

// gatherSize holds the records of a Write of bufSize bytes: each record adds
// at most 29 bytes (TLS 1.2 AES-GCM; 22 in TLS 1.3).
const gatherSize = bufSize + 1<<10

// smallSize holds what is left of a read-ahead buffer when crypto/tls has
// taken every whole record from it: at most one record, 16 KiB and 256
// bytes of expansion plus its 5-byte header.
const smallSize = 16<<10 + 512

var (
	pool      = sync.Pool{New: func() any { b := make([]byte, gatherSize); return &b }}
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallSize); return &b }}
)

// raw is the connection under tls.Conn.
type raw struct {
	net.Conn

	rmu    sync.Mutex // guards the read-ahead (tls.Conn reads under its own lock, too)
	rbuf   *[]byte    // read ahead, nil when empty
	rsmall bool       // rbuf is from smallPool
	r, w   int        // (*rbuf)[r:w] is unread

	wmu     sync.Mutex
	gather  int     // Writes of the conn above in progress
	pending *[]byte // records gathered, nil when none
	n       int     // (*pending)[:n] is gathered
	werr    error   // the error of the last flush
}

// Read serves p from the read-ahead buffer, filling it with one read when
// it is empty. A p of at least bufSize is read into directly.
func (c *raw) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rbuf == nil {
		if len(p) >= bufSize {
			return c.Conn.Read(p)
		}
		c.rbuf, c.rsmall = pool.Get().(*[]byte), false
		n, err := c.Conn.Read((*c.rbuf)[:bufSize])
		if n == 0 {
			c.release()
			return 0, err
		}
		c.r, c.w = 0, n
		// The error, if any, comes back from the next read.
	}
	n := copy(p, (*c.rbuf)[c.r:c.w])
	c.r += n
	switch left := c.w - c.r; {
	case left == 0:
		c.release()
	case left <= smallSize && !c.rsmall:
		// Less than a record is left, which may wait for the rest as
		// long as the peer likes: keep it in a small buffer.
		small := smallPool.Get().(*[]byte)
		copy(*small, (*c.rbuf)[c.r:c.w])
		c.release()
		c.rbuf, c.rsmall, c.r, c.w = small, true, 0, left
	}
	return n, nil
}

// release gives the read-ahead buffer back; the caller holds rmu.
func (c *raw) release() {
	if c.rsmall {
		smallPool.Put(c.rbuf)
	} else {
		pool.Put(c.rbuf)
	}
	c.rbuf = nil
}

// Write gathers p while a Write of the conn above is in progress and p
// fits; otherwise it writes what was gathered and p at once.
func (c *raw) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if c.gather > 0 {
		if c.pending == nil {
			c.pending = pool.Get().(*[]byte)
		}
		if c.n+len(p) <= gatherSize {
			c.n += copy((*c.pending)[c.n:], p)
			return len(p), nil
		}
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// flush writes what was gathered; the caller holds wmu.
func (c *raw) flush() error {
	if c.pending == nil {
		return nil
	}
	_, err := c.Conn.Write((*c.pending)[:c.n])
	pool.Put(c.pending)
	c.pending, c.n = nil, 0
	if err != nil {
		c.werr = err
	}
	return err
}

func (c *raw) begin() {
	c.wmu.Lock()
	c.gather++
	c.wmu.Unlock()
}

func (c *raw) end() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.gather--
	if c.gather > 0 {
		return nil
	}
	return c.flush()
}

// Close closes the connection and gives the buffers back. It closes first,
// without waiting for a write in progress: closing is what unblocks a
// write to a peer that stopped reading. (A close_notify gathered during a
// concurrent Write is then not sent; the peer sees the connection end.)
func (c *raw) Close() error {
	err := c.Conn.Close()
	c.wmu.Lock()
	if c.pending != nil {
		pool.Put(c.pending)
		c.pending, c.n = nil, 0
	}
	c.wmu.Unlock()
	return err
}

// secured is the TLS connection above a raw one: each Write's records go
// out in one write(2).
type secured struct {
	net.Conn // the TLS connection
	raw      *raw
	writing  atomic.Int32 // Writes in progress
}

func (c *secured) Write(p []byte) (int, error) {
	c.writing.Add(1)
	defer c.writing.Add(-1)
	c.raw.begin()
	n, err := c.Conn.Write(p)
	if ferr := c.raw.end(); err == nil && ferr != nil {
		return n, ferr
	}
	return n, err
}

// Close closes the TLS connection, or, while a Write is in progress, the
// connection under it at once, as tls.Conn.Close itself does for a Write
// in progress: a Write blocked on a peer that stopped reading holds the
// gathered records, and close_notify would wait behind it for crypto/tls's
// 5 s write deadline.
func (c *secured) Close() error {
	if c.writing.Load() > 0 {
		return c.raw.Close()
	}
	return c.Conn.Close()
}

// ReadFrom reads r in buffers of bufSize and writes each with one Write,
// where io.Copy would write 32 KiB at a time.
func (c *secured) ReadFrom(r io.Reader) (int64, error) {
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	var total int64
	for {
		n, err := r.Read((*bp)[:bufSize])
		if n > 0 {
			m, werr := c.Write((*bp)[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// NetConn returns the TLS connection, for callers that look for one (as
// tls.Conn.NetConn does for its own).
func (c *secured) NetConn() net.Conn { return c.Conn }

// Raw wraps conn, which a TLS connection will be made over. Pass the result
// to tls.Client or tls.Server, complete the handshake, then give the TLS
// connection to Secure with the result.
func Raw(conn net.Conn) net.Conn { return &raw{Conn: conn} }

// Secure returns tc, a TLS connection over a connection from Raw whose
// handshake is complete, so that each of its Writes is one write(2). It
// returns tc itself if under is not from Raw.
func Secure(tc net.Conn, under net.Conn) net.Conn {
	r, ok := under.(*raw)
	if !ok {
		return tc
	}
	return &secured{Conn: tc, raw: r}
}

// DialTLS returns a function for http.Transport.DialTLSContext that dials
// with d, makes a TLS connection with cfg (its ServerName, when empty, set
// from addr) and completes the handshake, within timeout if it is
// positive, over a connection from Raw.
func DialTLS(d *net.Dialer, cfg *tls.Config, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := cfg.Clone()
		if c.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				conn.Close()
				return nil, err
			}
			c.ServerName = host
		}
		r := Raw(conn)
		tc := tls.Client(r, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return Secure(tc, r), nil
	}
}
