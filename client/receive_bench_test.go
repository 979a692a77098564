package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
)

// chunkConn is a connection whose DownloadFile streams deliver chunks
// messages of one encoded chunk, split into 16 KiB buffers as grpc's HTTP/2
// transport delivers them, and decoded as grpc would: with the codec the
// call forces, else with the codec set here (nil: grpc's proto codec).
type chunkConn struct {
	grpc.ClientConnInterface
	override encoding.CodecV2 // replaces the call's codec when not nil
	data     mem.BufferSlice
	header   metadata.MD
	chunks   int
}

func newChunkConn(size, chunks int) *chunkConn {
	chunk := bytes.Repeat([]byte{7}, size)
	msg, err := proto.Marshal(&pb.FileResponse{ChunkData: chunk})
	if err != nil {
		panic(err)
	}
	var data mem.BufferSlice
	for len(msg) > 0 {
		n := min(16<<10, len(msg))
		data = append(data, mem.SliceBuffer(msg[:n]))
		msg = msg[n:]
	}
	h := sha256.New()
	for range chunks {
		h.Write(chunk)
	}
	header := metadata.Pairs(wire.HeaderSize, strconv.Itoa(size*chunks), wire.HeaderSHA256, hex.EncodeToString(h.Sum(nil)))
	return &chunkConn{data: data, header: header, chunks: chunks}
}

func (c *chunkConn) NewStream(ctx context.Context, _ *grpc.StreamDesc, _ string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	codec := encoding.GetCodecV2(protocodec.Name)
	for _, o := range opts {
		if f, ok := o.(grpc.ForceCodecV2CallOption); ok {
			codec = f.CodecV2
		}
	}
	if c.override != nil {
		codec = c.override
	}
	return &chunkClientStream{ctx: ctx, c: c, codec: codec}, nil
}

type chunkClientStream struct {
	grpc.ClientStream
	ctx   context.Context
	c     *chunkConn
	codec encoding.CodecV2
	sent  int
}

func (s *chunkClientStream) Context() context.Context     { return s.ctx }
func (s *chunkClientStream) Header() (metadata.MD, error) { return s.c.header, nil }
func (s *chunkClientStream) SendMsg(any) error            { return nil }
func (s *chunkClientStream) CloseSend() error             { return nil }
func (s *chunkClientStream) RecvMsg(m any) error {
	if s.sent == s.c.chunks {
		return io.EOF
	}
	s.sent++
	return s.codec.Unmarshal(s.c.data, m)
}

// downloadChunks runs one download of chunks chunks of size bytes into a
// hashing sink that keeps no bytes, and checks what arrived.
func downloadChunks(tb testing.TB, conn *chunkConn) {
	c := &Client{rpc: pb.NewGreeterClient(conn)}
	s := &sink{w: io.Discard, h: sha256.New()}
	if err := c.receive(tb.Context(), "f", s); err != nil {
		tb.Fatal(err)
	}
	if err := s.verify(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkDownloadReceive measures the client's download receive loop
// per 256 KiB chunk, from grpc's receive buffers to a hashing writer, with
// grpc's proto codec and with the transfer codec the client forces, in the
// same run: go test -run '^$' -bench DownloadReceive -benchmem ./client/.
// An op is one chunk.
func BenchmarkDownloadReceive(b *testing.B) {
	const size = 256 << 10
	for _, name := range []string{"codec=proto", "codec=transfer"} {
		b.Run(name, func(b *testing.B) {
			conn := newChunkConn(size, b.N)
			if name == "codec=proto" {
				conn.override = encoding.GetCodecV2(protocodec.Name)
			}
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			downloadChunks(b, conn)
		})
	}
}
