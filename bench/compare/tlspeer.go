package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/greeter/greeter/certs"
)

// The raw TLS peer is the physical limit of the comparison: a TLS 1.3
// sender and receiver (Go's crypto/tls, AES-128-GCM on CPUs with AES-NI)
// that copy a file to a file in 1 MiB reads, with no framing beyond one
// header line, no digest and no fsync. The harness runs this command itself
// as its server and client (os.Executable), so nothing else is installed.
// Protocol, one transfer per connection:
//
//	PUT <name> <size>\n<size bytes>   → OK\n once the file is closed
//	GET <name>\n                      → <size>\n<size bytes>

// tlsBuffer is the size of the peer's reads and writes.
const tlsBuffer = 1 << 20

// The peer's subcommands: the first argument of this command.
const (
	cmdTLSServe = "tls-serve" // tls-serve ADDR DIR CERT KEY
	cmdTLSPut   = "tls-put"   // tls-put ADDR CA SRC NAME
	cmdTLSGet   = "tls-get"   // tls-get ADDR CA NAME DST
)

// runTLSPeer runs a subcommand of the raw TLS peer; ok is false when args
// names none.
func runTLSPeer(ctx context.Context, args []string) (ok bool, err error) {
	if len(args) != 5 {
		return false, nil
	}
	switch args[0] {
	case cmdTLSServe:
		return true, tlsServe(ctx, args[1], args[2], args[3], args[4])
	case cmdTLSPut:
		return true, tlsPut(ctx, args[1], args[2], args[3], args[4])
	case cmdTLSGet:
		return true, tlsGet(ctx, args[1], args[2], args[3], args[4])
	}
	return false, nil
}

func tlsServe(ctx context.Context, addr, dir, certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	l, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			if err := tlsHandle(c, dir); err != nil {
				fmt.Fprintf(os.Stderr, "tls-serve: %v\n", err)
			}
		}()
	}
}

// tlsHandle serves one transfer on c, storing in dir.
func tlsHandle(c net.Conn, dir string) error {
	br := bufio.NewReaderSize(c, tlsBuffer)
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	f := strings.Fields(line)
	switch {
	case len(f) == 3 && f[0] == "PUT" && filepath.Base(f[1]) == f[1]:
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("bad size in %q", line)
		}
		out, err := os.Create(filepath.Join(dir, f[1]))
		if err != nil {
			return err
		}
		if _, err := copyBuffered(out, io.LimitReader(br, size)); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		_, err = io.WriteString(c, "OK\n")
		return err
	case len(f) == 2 && f[0] == "GET" && filepath.Base(f[1]) == f[1]:
		in, err := os.Open(filepath.Join(dir, f[1]))
		if err != nil {
			return err
		}
		defer in.Close()
		st, err := in.Stat()
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(c, "%d\n", st.Size()); err != nil {
			return err
		}
		_, err = copyBuffered(c, in)
		return err
	}
	return fmt.Errorf("bad request %q", line)
}

// copyBuffered copies in tlsBuffer pieces. The wrappers hide os.File's
// WriterTo, which would copy in 32 KiB pieces into a TLS connection.
func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, tlsBuffer))
}

// tlsDial connects to the peer's server, trusting only the CA in caFile.
func tlsDial(ctx context.Context, addr, caFile string) (*tls.Conn, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS13}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

func tlsPut(ctx context.Context, addr, caFile, src, name string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	c, err := tlsDial(ctx, addr, caFile)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "PUT %s %d\n", name, st.Size()); err != nil {
		return err
	}
	if _, err := copyBuffered(c, in); err != nil {
		return err
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || reply != "OK\n" {
		return fmt.Errorf("PUT %s: server answered %q: %v", name, reply, err)
	}
	return nil
}

func tlsGet(ctx context.Context, addr, caFile, name, dst string) error {
	c, err := tlsDial(ctx, addr, caFile)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET %s\n", name); err != nil {
		return err
	}
	br := bufio.NewReaderSize(c, tlsBuffer)
	line, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("GET %s: %w", name, err)
	}
	size, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		return fmt.Errorf("GET %s: bad size %q", name, line)
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	n, err := copyBuffered(out, io.LimitReader(br, size))
	if err == nil && n != size {
		err = fmt.Errorf("GET %s: %d of %d bytes", name, n, size)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// tlsTarget is the raw TLS peer: this command as server and client.
type tlsTarget struct {
	proc *process
	self string // this command's executable
	addr string
	ca   string
	dir  string
}

func (t *tlsTarget) Name() string     { return targetTLS }
func (t *tlsTarget) Server() *process { return t.proc }

func (t *tlsTarget) Upload(src, object string) []string {
	return []string{t.self, cmdTLSPut, t.addr, t.ca, src, object}
}

func (t *tlsTarget) Download(object, dst string) []string {
	return []string{t.self, cmdTLSGet, t.addr, t.ca, object, dst}
}

func (t *tlsTarget) Remove(_ context.Context, object string) error {
	return os.Remove(filepath.Join(t.dir, object))
}

// startTLSPeer starts the raw TLS peer's server with a certificate from a
// fresh dev PKI.
func (h *harness) startTLSPeer(ctx context.Context) (*tlsTarget, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := mkdir(h.work, "tls")
	if err != nil {
		return nil, err
	}
	data, err := mkdir(h.serverDir, "tls")
	if err != nil {
		return nil, err
	}
	pki, err := certs.InitDev(filepath.Join(dir, "pki"), certs.DevOptions{})
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProcess(targetTLS, filepath.Join(h.work, "tls.log"), cleanEnv(),
		h.serverArgv(self, cmdTLSServe, addr, data, pki.ServerCert, pki.ServerKey)...)
	if err != nil {
		return nil, err
	}
	h.onClose(func() { p.stop(5 * time.Second) })
	if err := waitTCP(ctx, p, addr, 10*time.Second); err != nil {
		return nil, err
	}
	if p.exited() {
		return nil, errors.New("the raw TLS server exited:\n" + p.tail())
	}
	return &tlsTarget{proc: p, self: self, addr: addr, ca: pki.CA, dir: data}, nil
}
