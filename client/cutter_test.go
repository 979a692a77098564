package client

import (
	"net"
	"sync"
)

// cutter breaks connections: the n-th connection dialed is closed once
// budgets[n] bytes went through it in either direction. Connections past
// the list are left alone.
type cutter struct {
	mu      sync.Mutex
	budgets []int64
	dialed  int
	cuts    int
}

func (c *cutter) wrap(conn net.Conn) net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.dialed
	c.dialed++
	if n >= len(c.budgets) {
		return conn
	}
	return &cutConn{Conn: conn, c: c, left: c.budgets[n]}
}

// cutCount returns how many connections were cut.
func (c *cutter) cutCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cuts
}

type cutConn struct {
	net.Conn
	c    *cutter
	mu   sync.Mutex
	left int64
	cut  bool
}

// spend counts n bytes and closes the connection once the budget is gone.
func (c *cutConn) spend(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.left -= int64(n)
	if c.left > 0 || c.cut {
		return
	}
	c.cut = true
	c.Conn.Close()
	c.c.mu.Lock()
	c.c.cuts++
	c.c.mu.Unlock()
}

func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.spend(n)
	return n, err
}

func (c *cutConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.spend(n)
	return n, err
}
