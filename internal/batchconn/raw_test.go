package batchconn

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
)

// What is left after a read, when it is less than a record, moves to a
// small buffer: a peer that stops mid-record pins no read-ahead buffer.
// The bytes still come out in order.
func TestLeftoverMovesToSmallBuffer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	data := make([]byte, 100<<10)
	rand.Read(data)
	go b.Write(data)
	c := Raw(a).(*raw)

	got := make([]byte, 60<<10)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if c.rbuf == nil || c.rsmall || c.w-c.r != 40<<10 {
		t.Fatalf("after 60 of 100 KiB: buffer %v, small %v, %d bytes left; want the read-ahead buffer with 40 KiB", c.rbuf != nil, c.rsmall, c.w-c.r)
	}
	more := make([]byte, 30<<10)
	if _, err := io.ReadFull(c, more); err != nil {
		t.Fatal(err)
	}
	if !c.rsmall || cap(*c.rbuf) != smallSize || c.w-c.r != 10<<10 {
		t.Fatalf("with 10 KiB left: small %v, cap %d, %d left; want them in a %d-byte buffer", c.rsmall, cap(*c.rbuf), c.w-c.r, smallSize)
	}
	rest := make([]byte, 10<<10)
	if _, err := io.ReadFull(c, rest); err != nil {
		t.Fatal(err)
	}
	if c.rbuf != nil {
		t.Fatal("a drained buffer is still held")
	}
	if !bytes.Equal(append(append(got, more...), rest...), data) {
		t.Fatal("the bytes read differ from those written")
	}
}
