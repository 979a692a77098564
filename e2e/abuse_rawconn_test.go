package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
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
