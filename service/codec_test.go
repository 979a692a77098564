package service_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire/codec"
	"github.com/greeter/greeter/service/servicetest"
)

// startWithCodec serves the service with the transfer codec forced, as
// greeterd does.
func startWithCodec(t *testing.T) *tester {
	return start(t, servicetest.Config{ServerOptions: []grpc.ServerOption{grpc.ForceServerCodecV2(codec.Codec{})}})
}

// rawCodec sends []byte messages as they are: a client that writes any
// bytes it likes on the wire.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// TestCodecRoundTrips uploads and downloads files of several sizes in
// several chunk sizes through the transfer codec, plain and resumable, and
// a ranged download.
func TestCodecRoundTrips(t *testing.T) {
	h := startWithCodec(t)
	ctx := testCtx(t)
	for _, tt := range []struct{ size, chunk int }{{0, 1}, {1, 1}, {1000, 7}, {256<<10 + 1, 256 << 10}, {3 << 20, 1 << 20}} {
		data := make([]byte, tt.size)
		rand.Read(data)
		name := fmt.Sprintf("f-%d-%d", tt.size, tt.chunk)
		resp, err := h.upload(ctx, name, data, tt.chunk)
		if err != nil {
			t.Fatalf("%s: upload: %v", name, err)
		}
		if resp.GetSha256() != hexSum(data) || resp.GetSize() != int64(tt.size) {
			t.Errorf("%s: upload answered %v, want %d bytes with sha256 %s", name, resp, tt.size, hexSum(data))
		}
		got, _, err := h.download(ctx, &pb.MetaData{Filename: name})
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: download = %d bytes, %v; want the %d bytes uploaded", name, len(got), err, tt.size)
		}
	}

	data := make([]byte, 200<<10)
	rand.Read(data)
	if _, err := h.send(ctx, resumeMsgs("codec-resume", "resumed", data, 0, 64<<10)...); err != nil {
		t.Fatalf("resumable upload: %v", err)
	}
	h.assertStored(ctx, "resumed", data)
	got, _, err := h.download(ctx, &pb.MetaData{Filename: "resumed", Offset: 1000, Limit: 70 << 10})
	if err != nil || !bytes.Equal(got, data[1000:1000+70<<10]) {
		t.Errorf("ranged download = %d bytes, %v; want bytes 1000..%d", len(got), err, 1000+70<<10)
	}
}

// TestCodecUploadMessages sends upload messages the fast path does not
// take, and malformed ones, as raw bytes: what proto accepts is stored as
// proto decodes it, malformed input ends InvalidArgument naming the
// message and stores nothing.
func TestCodecUploadMessages(t *testing.T) {
	h := startWithCodec(t)
	ctx := testCtx(t)
	enc := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := enc(meta("raw"))
	unknown := protowire.AppendBytes(protowire.AppendTag(nil, 99, protowire.BytesType), []byte("ignored"))
	abc := enc(chunk([]byte("abc")))
	tests := []struct {
		name string
		msgs [][]byte
		code codes.Code
		msg  string
		want []byte // stored, when code is OK
	}{
		{"chunk with an unknown field", [][]byte{first, append(bytes.Clone(abc), unknown...)}, codes.OK, "", []byte("abc")},
		{"chunk field twice", [][]byte{first, append(bytes.Clone(abc), enc(chunk([]byte("de")))...)}, codes.OK, "", []byte("de")},
		{"truncated chunk", [][]byte{first, abc[:len(abc)-1]}, codes.InvalidArgument, "malformed UploadFileRequest", nil},
		// proto keeps a known field of the wrong wire type as an unknown
		// field: an empty message, no bytes.
		{"chunk as a varint", [][]byte{first, protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 3)}, codes.OK, "", []byte{}},
		{"malformed first message", [][]byte{{0xff}}, codes.InvalidArgument, "malformed UploadFileRequest", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := h.Conn.NewStream(ctx, &pb.Greeter_ServiceDesc.Streams[0], pb.Greeter_UploadFile_FullMethodName, grpc.ForceCodecV2(rawCodec{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.msgs {
				if err := stream.SendMsg(&m); err != nil {
					break
				}
			}
			if err := stream.CloseSend(); err != nil {
				t.Fatal(err)
			}
			err = stream.RecvMsg(new(pb.StringResponse))
			wantCode(t, err, tt.code, tt.msg)
			if tt.code == codes.OK {
				h.assertStored(ctx, "raw", tt.want)
			}
			h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
			h.assertNoTemporaries()
		})
	}
}
