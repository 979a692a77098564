package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/greeter/greeter/e2e/e2etest"
)

// These tests speak raw HTTP/2 (golang.org/x/net/http2.Framer and hpack)
// over TLS to a real dev-mode greeterd, the way grpc-go's own servertester
// does, to send what no well-behaved gRPC client sends (RELIABILITY.md T7-T12).

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
