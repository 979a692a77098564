package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/greeter/greeter/e2e/e2etest"
	"github.com/greeter/greeter/proto/greeterpb"
)

// These tests speak raw HTTP/2 (golang.org/x/net/http2.Framer and hpack)
// over TLS to a real dev-mode greeterd, the way grpc-go's own servertester
// does, to send what no well-behaved gRPC client sends (RELIABILITY.md T7-T12).

// rawDeadline bounds every raw connection: no read or write waits longer,
// so a server that never answers fails the test instead of hanging it.
const rawDeadline = 60 * time.Second

// sayHelloPath is the method every raw request calls.
const sayHelloPath = "/Greeter/SayHello"

// rawStream is what the server sent on one stream.
type rawStream struct {
	grpcStatus  string // "" until the server sent it
	grpcMessage string
	data        []byte // DATA payload, at most rawMaxData bytes kept
	ended       bool   // END_STREAM seen
	rst         bool
	rstCode     http2.ErrCode
}

// rawGoAway is a GOAWAY the server sent.
type rawGoAway struct {
	code  http2.ErrCode
	debug string
}

func (g *rawGoAway) String() string {
	if g == nil {
		return "no GOAWAY"
	}
	return fmt.Sprintf("GOAWAY %v %q", g.code, g.debug)
}

// done reports whether the stream is over from the server's side.
func (s *rawStream) done() bool { return s.ended || s.rst }

const rawMaxData = 4 << 10

// rawConn is an HTTP/2 client connection driven frame by frame. One
// goroutine (the test's) writes; a reader goroutine records what the
// server sends and never writes, so a server that stops reading can never
// deadlock the test against its own acknowledgements.
type rawConn struct {
	t         *testing.T
	conn      *tls.Conn
	authority string
	token     string

	// Writer side, used by the test goroutine only.
	bw     *bufio.Writer
	fr     *http2.Framer
	enc    *hpack.Encoder
	encBuf bytes.Buffer
	nextID uint32
	wErr   error // first write error: the server may close the connection first

	// Reader side.
	mu       sync.Mutex
	changed  chan struct{} // a buffered wake-up after every frame
	readDone chan struct{} // closed when the reader returns
	readErr  error
	settings bool // the server's SETTINGS arrived
	pingAcks int
	goAway   *rawGoAway
	streams  map[uint32]*rawStream
}

// devFile reads a file greeterd wrote into its dev state dir.
func devFile(t *testing.T, state, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dialRaw opens a TLS 1.3 connection negotiating h2 with the dev CA, sends
// the client preface and settings, and acknowledges the server's settings.
func dialRaw(t *testing.T, srv *e2etest.Server, state string) *rawConn {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(devFile(t, state, "ca.pem")) {
		t.Fatal("ca.pem holds no certificate")
	}
	d := &tls.Dialer{Config: &tls.Config{
		RootCAs:    pool,
		ServerName: "localhost",
		NextProtos: []string{"h2"},
		MinVersion: tls.VersionTLS13,
	}}
	conn, err := d.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", srv.Addr, err)
	}
	tc := conn.(*tls.Conn)
	t.Cleanup(func() { tc.Close() })
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated protocol %q, want h2", p)
	}
	tc.SetDeadline(time.Now().Add(rawDeadline))

	c := &rawConn{
		t:         t,
		conn:      tc,
		authority: srv.Addr,
		token:     strings.TrimSpace(string(devFile(t, state, "token"))),
		bw:        bufio.NewWriterSize(tc, 64<<10),
		nextID:    1,
		changed:   make(chan struct{}, 1),
		readDone:  make(chan struct{}),
		streams:   map[uint32]*rawStream{},
	}
	c.fr = http2.NewFramer(c.bw, tc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.enc = hpack.NewEncoder(&c.encBuf)
	go c.read()
	t.Cleanup(func() {
		tc.Close()
		<-c.readDone
	})

	c.write(func() error {
		if _, err := c.bw.WriteString(http2.ClientPreface); err != nil {
			return err
		}
		if err := c.fr.WriteSettings(); err != nil {
			return err
		}
		// A large connection window, so that answers to many streams are
		// never held back by flow control.
		return c.fr.WriteWindowUpdate(0, 1<<30)
	})
	c.flush()
	c.waitFor("the server's SETTINGS", func() bool { return c.settings })
	c.write(c.fr.WriteSettingsAck)
	c.flush()
	return c
}

// read records every frame the server sends until the connection ends.
func (c *rawConn) read() {
	defer close(c.readDone)
	for {
		f, err := c.fr.ReadFrame()
		c.mu.Lock()
		if err != nil {
			c.readErr = err
			c.mu.Unlock()
			c.wake()
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.settings = true
			}
		case *http2.PingFrame:
			if f.IsAck() {
				c.pingAcks++
			}
		case *http2.GoAwayFrame:
			c.goAway = &rawGoAway{code: f.ErrCode, debug: string(f.DebugData())}
		case *http2.MetaHeadersFrame:
			s := c.stream(f.StreamID)
			if v := f.PseudoValue("status"); v != "" && v != "200" && s.grpcStatus == "" {
				s.grpcStatus = "http " + v
			}
			for _, hf := range f.RegularFields() {
				switch hf.Name {
				case "grpc-status":
					s.grpcStatus = hf.Value
				case "grpc-message":
					s.grpcMessage = hf.Value
				}
			}
			s.ended = s.ended || f.StreamEnded()
		case *http2.DataFrame:
			s := c.stream(f.StreamID)
			if room := rawMaxData - len(s.data); room > 0 {
				d := f.Data()
				s.data = append(s.data, d[:min(len(d), room)]...)
			}
			s.ended = s.ended || f.StreamEnded()
		case *http2.RSTStreamFrame:
			s := c.stream(f.StreamID)
			s.rst, s.rstCode = true, f.ErrCode
		}
		c.mu.Unlock()
		c.wake()
	}
}

// stream returns the record of stream id; c.mu must be held.
func (c *rawConn) stream(id uint32) *rawStream {
	s, ok := c.streams[id]
	if !ok {
		s = &rawStream{}
		c.streams[id] = s
	}
	return s
}

func (c *rawConn) wake() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// waitFor blocks until cond (called with c.mu held) holds. It fails the
// test if the connection ends first; the connection deadline bounds the wait.
func (c *rawConn) waitFor(what string, cond func() bool) {
	c.t.Helper()
	if !c.waitOrEnd(cond) {
		c.t.Fatalf("the connection ended (%v; %v) before %s", c.readErr, c.goAway, what)
	}
}

// waitOrEnd blocks until cond holds, returning true, or until the
// connection ends, returning false.
func (c *rawConn) waitOrEnd(cond func() bool) bool {
	for {
		c.mu.Lock()
		ok, ended := cond(), c.readErr != nil
		c.mu.Unlock()
		switch {
		case ok:
			return true
		case ended:
			return false
		}
		<-c.changed
	}
}

// write runs one framer write unless an earlier one failed.
func (c *rawConn) write(w func() error) {
	if c.wErr == nil {
		c.wErr = w()
	}
}

func (c *rawConn) flush() {
	if c.wErr == nil {
		c.wErr = c.bw.Flush()
	}
}

// newStream returns the next client stream id.
func (c *rawConn) newStream() uint32 {
	id := c.nextID
	c.nextID += 2
	return id
}

// headers sends a request for path with the dev token and extra fields,
// split into HEADERS and CONTINUATION frames of at most 16 KiB.
func (c *rawConn) headers(id uint32, path string, endStream bool, extra ...hpack.HeaderField) {
	c.encBuf.Reset()
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "https"},
		{Name: ":path", Value: path},
		{Name: ":authority", Value: c.authority},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "te", Value: "trailers"},
		{Name: "authorization", Value: "Bearer " + c.token},
	}
	for _, hf := range append(fields, extra...) {
		if err := c.enc.WriteField(hf); err != nil {
			c.t.Fatalf("hpack: %v", err)
		}
	}
	block := c.encBuf.Bytes()
	const maxFrame = 16 << 10
	first := block[:min(len(block), maxFrame)]
	block = block[len(first):]
	c.write(func() error {
		return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) == 0})
	})
	for len(block) > 0 {
		frag := block[:min(len(block), maxFrame)]
		block = block[len(frag):]
		c.write(func() error { return c.fr.WriteContinuation(id, len(block) == 0, frag) })
	}
}

// helloMessage is a length-prefixed gRPC message holding a HelloRequest.
func helloMessage(t *testing.T) []byte {
	t.Helper()
	b, err := proto.Marshal(&greeterpb.HelloRequest{Name: "raw", Age: 7})
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(msg[1:], uint32(len(b)))
	return append(msg, b...)
}

// call sends a complete SayHello-shaped request (headers, one message, end
// of stream) to path and returns its stream id.
func (c *rawConn) call(path string, extra ...hpack.HeaderField) uint32 {
	id := c.newStream()
	c.headers(id, path, false, extra...)
	msg := helloMessage(c.t)
	c.write(func() error { return c.fr.WriteData(id, true, msg) })
	c.flush()
	return id
}

// result waits until stream id is over or the connection ends, and
// returns a copy of what the server sent on it (nil if nothing).
func (c *rawConn) result(id uint32) (s *rawStream, connEnded bool) {
	c.waitOrEnd(func() bool { st, ok := c.streams[id]; return ok && st.done() })
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.streams[id]; ok {
		cp := *st
		s = &cp
	}
	return s, c.readErr != nil
}

// rawHello checks over a fresh raw connection that the server still
// answers a well-formed SayHello.
func rawHello(t *testing.T, srv *e2etest.Server, state string) {
	t.Helper()
	c := dialRaw(t, srv, state)
	s, _ := c.result(c.call(sayHelloPath))
	if s == nil || s.grpcStatus != "0" || !bytes.Contains(s.data, []byte("Hello, raw! Your age is 7")) {
		t.Fatalf("raw SayHello: got %+v (connection: %v), want grpc-status 0 and the greeting", s, c.readErr)
	}
}

// cliHello checks that the real CLI still gets its greeting.
func cliHello(t *testing.T, srv *e2etest.Server, state string) {
	t.Helper()
	res := cli(t, srv, state, 0, "hello", "--name", "Ada", "--age", "36")
	if got := strings.TrimSpace(res.Stdout); got != "Hello, Ada! Your age is 36" {
		t.Fatalf("hello printed %q", got)
	}
}

// rssBytes reads a process's resident set size.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := e2etest.RSS(pid)
	if err != nil {
		t.Fatalf("greeterd (pid %d): %v", pid, err)
	}
	return n
}

// TestAbuseRapidReset opens 2000 authenticated SayHello streams and resets
// each at once (CVE-2023-44487 and its 2026 bypass). greeterd must survive
// with bounded memory and keep serving.
func TestAbuseRapidReset(t *testing.T) {
	const (
		streams  = 2000
		rssBound = 200 << 20
	)
	srv, state := devServer(t)
	pid := srv.PID()
	before := rssBytes(t, pid)

	c := dialRaw(t, srv, state)
	for i := range streams {
		id := c.newStream()
		c.headers(id, sayHelloPath, false)
		c.write(func() error { return c.fr.WriteRSTStream(id, http2.ErrCodeCancel) })
		if i%100 == 99 {
			c.flush()
		}
	}
	// The server handles frames in order: once it acknowledges this PING
	// it has seen every HEADERS and RST_STREAM above.
	c.write(func() error { return c.fr.WritePing(false, [8]byte{'r', 'e', 's', 'e', 't'}) })
	c.flush()
	if c.wErr != nil {
		t.Logf("writing stopped early: %v", c.wErr)
	}
	acked := c.waitOrEnd(func() bool { return c.pingAcks > 0 })

	c.mu.Lock()
	answered, resets := 0, 0
	for _, s := range c.streams {
		if s.grpcStatus != "" {
			answered++
		}
		if s.rst {
			resets++
		}
	}
	goAway, readErr := c.goAway, c.readErr
	c.mu.Unlock()
	t.Logf("%d streams reset by the client: %d answered with a status, %d reset by the server; PING acknowledged: %v; %v; connection: %v",
		streams, answered, resets, acked, goAway, readErr)
	// Closing the abusive connection (with or without GOAWAY) is a fair
	// defence; what must hold is that the process survives, stays small
	// and serves others.

	after := rssBytes(t, pid)
	t.Logf("greeterd RSS: %d MiB before, %d MiB after", before>>20, after>>20)
	if after > rssBound {
		t.Errorf("greeterd RSS after the rapid reset: %d MiB, want at most %d MiB", after>>20, rssBound>>20)
	}
	cliHello(t, srv, state)
	rawHello(t, srv, state)
}

// TestAbuseMalformedPath sends complete requests whose :path is not
// "/service/method" (CVE-2026-33186). No handler may answer: the server
// replies Unimplemented (12) or refuses the stream or connection.
func TestAbuseMalformedPath(t *testing.T) {
	srv, state := devServer(t)
	for _, path := range []string{"Greeter/SayHello", "//Greeter/SayHello", "/", "", "Greeter/SayHello/", "/Greeter/SayHello/"} {
		t.Run(strconv.Quote(path), func(t *testing.T) {
			c := dialRaw(t, srv, state)
			s, connEnded := c.result(c.call(path))
			switch {
			case s != nil && s.grpcStatus == "0":
				t.Fatalf(":path %q reached a handler: grpc-status 0, data %q", path, s.data)
			case s != nil && s.grpcStatus == "12":
				t.Logf(":path %q: Unimplemented %q", path, s.grpcMessage)
			case s != nil && s.rst:
				t.Logf(":path %q: stream reset with %v", path, s.rstCode)
			case connEnded:
				t.Logf(":path %q: connection ended (%v, %v)", path, c.readErr, c.goAway)
			default:
				t.Fatalf(":path %q: got %+v, want grpc-status 12, a stream reset or a connection error", path, s)
			}
		})
	}
	rawHello(t, srv, state)
}

// TestAbuseOversizedHeaders sends header lists over greeterd's
// --max-header-list-size of 16 KiB: 64 KiB of custom metadata spread over
// HEADERS and CONTINUATION frames, and 20 KiB (decoded) of metadata that
// hpack squeezes into one HEADERS frame. The stream or the connection is
// refused before any handler runs, and the server keeps serving.
func TestAbuseOversizedHeaders(t *testing.T) {
	srv, state := devServer(t)
	for _, c := range []struct {
		name   string
		fields int
		size   int
		value  func(i int) string
	}{
		{"64 KiB in CONTINUATION frames", 16, 4 << 10, func(i int) string { return strconv.Itoa(i % 10) }},
		{"20 KiB in one HEADERS frame", 5, 4 << 10, func(int) string { return "a" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := dialRaw(t, srv, state)
			var pad []hpack.HeaderField
			for i := range c.fields {
				pad = append(pad, hpack.HeaderField{Name: fmt.Sprintf("x-pad-%02d", i), Value: strings.Repeat(c.value(i), c.size)})
			}
			s, connEnded := conn.result(conn.call(sayHelloPath, pad...))
			switch {
			case s != nil && s.grpcStatus == "0":
				t.Fatalf("oversized headers reached the handler: grpc-status 0, data %q", s.data)
			case s != nil && (s.rst || s.grpcStatus != ""):
				t.Logf("stream refused: %+v", *s)
			case connEnded:
				t.Logf("connection ended: %v, %v", conn.readErr, conn.goAway)
			default:
				t.Fatalf("got %+v, want a refused stream or connection", s)
			}
			rawHello(t, srv, state)
		})
	}
	cliHello(t, srv, state)
}

// TestAbusePingFlood sends 1000 PINGs in one burst on a connection without
// calls. The server answers with GOAWAY ENHANCE_YOUR_CALM "too_many_pings"
// (or just closes the connection) and keeps serving new connections.
func TestAbusePingFlood(t *testing.T) {
	srv, state := devServer(t)
	c := dialRaw(t, srv, state)
	for i := range 1000 {
		var data [8]byte
		binary.BigEndian.PutUint64(data[:], uint64(i))
		c.write(func() error { return c.fr.WritePing(false, data) })
	}
	c.flush()
	// Wait for the end of the connection: a GOAWAY must be followed by it.
	c.waitOrEnd(func() bool { return false })
	c.mu.Lock()
	goAway, readErr, acks := c.goAway, c.readErr, c.pingAcks
	c.mu.Unlock()
	t.Logf("ping flood: %d acknowledged, %v, connection: %v, writes: %v", acks, goAway, readErr, c.wErr)
	switch {
	case goAway != nil:
		if goAway.code != http2.ErrCodeEnhanceYourCalm || goAway.debug != "too_many_pings" {
			t.Errorf("got %v, want GOAWAY ENHANCE_YOUR_CALM \"too_many_pings\"", goAway)
		}
	}
	if isTimeout(readErr) {
		t.Fatalf("the server did not close the flooding connection within %v (%v)", rawDeadline, goAway)
	}
	if acks >= 1000 {
		t.Errorf("all %d PINGs were acknowledged: the flood was not noticed", acks)
	}
	cliHello(t, srv, state)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestAbuseConnectionWithoutTLS opens a TCP connection and never starts
// the TLS handshake: greeterd --connection-timeout 1s must close it. The
// 10 s read deadline only bounds the test; it is not a latency assertion.
func TestAbuseConnectionWithoutTLS(t *testing.T) {
	srv, state := devServer(t, "--connection-timeout", "1s")
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(make([]byte, 1))
	switch {
	case isTimeout(err):
		t.Fatalf("greeterd --connection-timeout 1s kept a connection without a handshake open for 10s")
	case err == nil:
		t.Fatalf("greeterd sent %d bytes to a client that never said hello", n)
	}
	t.Logf("read after the handshake timeout: %v", err)
	cliHello(t, srv, state)
}

// TestAbuseHandshakeSlowloris holds 200 TCP connections that never start
// TLS while a normal client calls: the idle handshakes must not starve it.
// The handshake timeout is long, so the connections stay open throughout.
// The per-IP connection cap is raised above 200: the attacker and the
// client share 127.0.0.1 here, and what is tested is that pending handshakes
// do not starve the server (TestHardeningConnsPerIPCapped covers the cap).
func TestAbuseHandshakeSlowloris(t *testing.T) {
	const idle = 200
	srv, state := devServer(t, "--connection-timeout", "5m", "--max-conns-per-ip", "256")
	for i := range idle {
		conn, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		defer conn.Close()
	}
	cliHello(t, srv, state)
	rawHello(t, srv, state)
}
