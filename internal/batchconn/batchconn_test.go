package batchconn_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greeter/greeter/internal/batchconn"
)

// selfSigned returns a server config with a fresh certificate for
// 127.0.0.1 and a client config that trusts it.
func selfSigned(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "batchconn test"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "localhost"}
	return server, client
}

// counted counts the reads and writes made on the connection it wraps.
type counted struct {
	net.Conn
	reads, writes atomic.Int64
}

func (c *counted) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

func (c *counted) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// pipePair returns the two ends of a TLS connection over net.Pipe, each
// over a counted connection, after the handshake; batched ends are made
// with Raw and Secure.
func pipePair(t *testing.T, batched bool) (client, server net.Conn, cc, sc *counted) {
	t.Helper()
	scfg, ccfg := selfSigned(t)
	a, b := net.Pipe()
	cc, sc = &counted{Conn: a}, &counted{Conn: b}
	var cu, su net.Conn = cc, sc
	if batched {
		cu, su = batchconn.Raw(cc), batchconn.Raw(sc)
	}
	ct, st := tls.Client(cu, ccfg), tls.Server(su, scfg)
	errs := make(chan error, 1)
	go func() { errs <- st.Handshake() }()
	if err := ct.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	client, server = batchconn.Secure(ct, cu), batchconn.Secure(st, su)
	// Closing the pipe, not the TLS ends: their close_notify would wait
	// for a reader.
	t.Cleanup(func() { a.Close(); b.Close() })
	cc.reads.Store(0)
	cc.writes.Store(0)
	sc.reads.Store(0)
	sc.writes.Store(0)
	return client, server, cc, sc
}

// A Write of 64 KiB is four TLS records: one write under the batched
// connection where plain crypto/tls makes four, and the peer reads all
// four records with one read.
func TestOneWriteOneSyscall(t *testing.T) {
	payload := make([]byte, 64<<10)
	rand.Read(payload)
	for _, batched := range []bool{false, true} {
		client, server, cc, sc := pipePair(t, batched)
		got := make(chan []byte, 1)
		go func() {
			b := make([]byte, len(payload))
			io.ReadFull(server, b)
			got <- b
		}()
		if _, err := client.Write(payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(<-got, payload) {
			t.Fatalf("batched %v: the peer read other bytes", batched)
		}
		writes, reads := cc.writes.Load(), sc.reads.Load()
		t.Logf("batched %v: a 64 KiB Write took %d writes; the peer %d reads", batched, writes, reads)
		if batched && (writes != 1 || reads != 1) {
			t.Errorf("a 64 KiB Write took %d writes and the peer %d reads, want 1 and 1", writes, reads)
		}
		if !batched && writes < 4 {
			t.Errorf("plain crypto/tls wrote 4 records with %d writes; the batched count above compares with nothing", writes)
		}
	}
}

// Bytes cross intact in both directions at once over real TCP, in writes
// of every size up to past a buffer, and through ReadFrom.
func TestEchoOverTCP(t *testing.T) {
	scfg, ccfg := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		r := batchconn.Raw(conn)
		st := tls.Server(r, scfg)
		if st.Handshake() != nil {
			conn.Close()
			return
		}
		s := batchconn.Secure(st, r)
		defer s.Close()
		io.Copy(s, io.LimitReader(s, 1<<62)) // echo, through ReadFrom
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := batchconn.DialTLS(&net.Dialer{}, ccfg, 5*time.Second)(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(interface {
		ReadFrom(io.Reader) (int64, error)
	}); !ok {
		t.Fatalf("DialTLS returned %T, not a batched connection", c)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))

	data := make([]byte, 8<<20)
	rand.Read(data)
	sent := sha256.New()
	received := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		io.CopyN(h, c, int64(len(data)))
		var sum [32]byte
		received <- [32]byte(h.Sum(sum[:0]))
	}()
	for off, size := 0, 1; off < len(data); size = size*3 + 1 {
		if size > 300<<10 {
			size = 1
		}
		end := min(off+size, len(data))
		if _, err := c.Write(data[off:end]); err != nil {
			t.Fatal(err)
		}
		sent.Write(data[off:end])
		off = end
	}
	if got, want := <-received, sha256.Sum256(data); got != want || [32]byte(sent.Sum(nil)) != want {
		t.Fatal("the echo differs from what was sent")
	}
}

// A write after the peer went away fails; it does not hang or panic, and
// later writes fail too.
func TestWriteAfterPeerClosed(t *testing.T) {
	client, _, _, sc := pipePair(t, true)
	sc.Conn.Close()
	big := make([]byte, 64<<10)
	if _, err := client.Write(big); err == nil {
		t.Fatal("Write to a closed peer succeeded")
	}
	if _, err := client.Write([]byte("x")); err == nil {
		t.Fatal("a second Write to a closed peer succeeded")
	}
}

// Close ends a Write blocked on a peer that stopped reading, at once: it
// does not wait for close_notify behind the blocked write.
func TestCloseEndsBlockedWrite(t *testing.T) {
	client, _, _, _ := pipePair(t, true)
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(make([]byte, 64<<10)) // the peer never reads
		wrote <- err
	}()
	for batchconn.Writing(client) == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- client.Close() }()
	select {
	case <-closed:
	case <-time.After(3 * time.Second): // the bug waited out crypto/tls's 5 s deadline
		t.Fatal("Close waited for a blocked Write")
	}
	if err := <-wrote; err == nil {
		t.Fatal("a Write to a peer that never read succeeded after Close")
	}
}
