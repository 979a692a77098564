package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"hash"
	"io"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire/codec"
)

// Codecs compared by the receive benchmarks: grpc's proto codec, which
// greeterd used before, and the transfer codec it forces now.
var receiveCodecs = []struct {
	name  string
	codec encoding.CodecV2
}{
	{"codec=proto", encoding.GetCodecV2(protocodec.Name)},
	{"codec=transfer", codec.Codec{}},
}

// chunkStream is an upload stream that delivers chunks chunk messages of
// one encoded chunk, split into 16 KiB buffers as grpc's HTTP/2 transport
// delivers them, decoded by codec as grpc would.
type chunkStream struct {
	grpc.ServerStream
	ctx    context.Context
	codec  encoding.CodecV2
	data   mem.BufferSlice
	chunks int
	sent   int
}

func newChunkStream(ctx context.Context, c encoding.CodecV2, size, chunks int) *chunkStream {
	msg, err := proto.Marshal(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: bytes.Repeat([]byte{7}, size)}})
	if err != nil {
		panic(err)
	}
	var data mem.BufferSlice
	for len(msg) > 0 {
		n := min(16<<10, len(msg))
		data = append(data, mem.SliceBuffer(msg[:n]))
		msg = msg[n:]
	}
	return &chunkStream{ctx: ctx, codec: c, data: data, chunks: chunks}
}

func (s *chunkStream) Context() context.Context { return s.ctx }

func (s *chunkStream) RecvMsg(m any) error {
	if s.sent == s.chunks {
		return io.EOF
	}
	s.sent++
	return s.codec.Unmarshal(s.data, m)
}

func (s *chunkStream) Recv() (*pb.UploadFileRequest, error) {
	m := new(pb.UploadFileRequest)
	return m, s.RecvMsg(m)
}

func (s *chunkStream) SendAndClose(*pb.StringResponse) error { return nil }

// hashingUpload is an Upload that hashes what it is given and keeps
// nothing: the CPU work of a store's Write without its I/O.
type hashingUpload struct {
	h hash.Hash
	n int64
}

func (u *hashingUpload) Write(p []byte) (int, error) {
	u.h.Write(p)
	u.n += int64(len(p))
	return len(p), nil
}
func (u *hashingUpload) Written() int64                                   { return u.n }
func (u *hashingUpload) Commit(context.Context, Expect) (FileInfo, error) { return FileInfo{}, nil }
func (u *hashingUpload) Abort() error                                     { return nil }

// receiveChunks runs the upload receive loop over a stream of chunks
// messages of size bytes each, decoded by c.
func receiveChunks(tb testing.TB, s *Server, c encoding.CodecV2, size, chunks int) {
	ctx := tb.Context()
	stream := newChunkStream(ctx, c, size, chunks)
	recv := newReceiver(ctx, stream, DefaultIdleTimeout)
	defer recv.stop()
	in := &inbound{Upload: &hashingUpload{h: sha256.New()}, limit: 1 << 62}
	if err := s.receive(ctx, recv, in, &transfer{}); err != nil {
		tb.Fatal(err)
	}
	if in.chunks != chunks {
		tb.Fatalf("received %d chunks, want %d", in.chunks, chunks)
	}
}

// BenchmarkUploadReceive measures the server's upload receive loop per
// 256 KiB chunk, from grpc's receive buffers to a hashing store, with the
// proto codec and the transfer codec in the same run: go test -run '^$'
// -bench UploadReceive -benchmem ./service/. An op is one chunk.
func BenchmarkUploadReceive(b *testing.B) {
	const size = 256 << 10
	s := New(nil, Options{})
	for _, c := range receiveCodecs {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			receiveChunks(b, s, c.codec, size, b.N)
		})
	}
}
