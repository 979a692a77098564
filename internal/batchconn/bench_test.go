package batchconn_test

import (
	"crypto/tls"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/greeter/greeter/internal/batchconn"
)

// BenchmarkTLSStream sends 256 KiB Writes over TLS 1.3 on loopback TCP to
// a reader in the same process, with plain crypto/tls and with batchconn
// on both ends: compare their MB/s and CPU per byte (cpu-ns/B, user and
// system time of the whole process) in one run:
//
//	go test -run '^$' -bench TLSStream -benchtime 2x ./internal/batchconn/
func BenchmarkTLSStream(b *testing.B) {
	for _, batched := range []bool{false, true} {
		name := "plain"
		if batched {
			name = "batched"
		}
		b.Run(name, func(b *testing.B) { benchStream(b, batched) })
	}
}

func benchStream(b *testing.B, batched bool) {
	const total = 256 << 20
	scfg, ccfg := selfSigned(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	wrap := func(c net.Conn) net.Conn {
		if batched {
			return batchconn.Raw(c)
		}
		return c
	}
	done := make(chan error, 1)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			r := wrap(conn)
			st := tls.Server(r, scfg)
			if err := st.Handshake(); err != nil {
				done <- err
				return
			}
			_, err = io.CopyN(io.Discard, batchconn.Secure(st, r), total)
			conn.Close()
			done <- err
		}
	}()
	buf := make([]byte, 256<<10)
	b.SetBytes(total)
	b.ResetTimer()
	var start, end syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &start)
	for range b.N {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		r := wrap(conn)
		ct := tls.Client(r, ccfg)
		if err := ct.Handshake(); err != nil {
			b.Fatal(err)
		}
		c := batchconn.Secure(ct, r)
		for sent := 0; sent < total; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &end)
	cpu := time.Duration(end.Utime.Nano()-start.Utime.Nano()) + time.Duration(end.Stime.Nano()-start.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(total*int64(b.N)), "cpu-ns/B")
}
