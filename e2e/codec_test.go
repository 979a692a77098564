package e2e

import (
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/greeter/greeter/proto/greeterpb"
)

// rawBytes sends []byte messages as they are, so a test can put any bytes
// on the wire; it decodes answers as proto.
type rawBytes struct{}

func (rawBytes) Name() string { return "proto" }
func (rawBytes) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawBytes) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// TestCodecMalformedChunk sends greeterd an upload whose chunk message is
// cut short. greeterd forces the transfer codec, which answers
// InvalidArgument naming the message (grpc's proto codec would answer
// Internal), and nothing is stored.
func TestCodecMalformedChunk(t *testing.T) {
	faultNoLeaks(t)
	r := newFaultRig(t, "")
	conn := r.conn()
	first, err := proto.Marshal(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_Metadata{Metadata: &greeterpb.MetaData{Filename: "cut.bin"}}})
	if err != nil {
		t.Fatal(err)
	}
	chunk, err := proto.Marshal(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: make([]byte, 300<<10)}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := conn.NewStream(faultCtx(t), &greeterpb.Greeter_ServiceDesc.Streams[0], greeterpb.Greeter_UploadFile_FullMethodName, grpc.ForceCodecV2(rawBytes{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]byte{first, chunk, chunk[:len(chunk)-1]} {
		if err := st.SendMsg(&m); err != nil {
			break // the server ended the call; RecvMsg has the status
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	err = st.RecvMsg(new(greeterpb.StringResponse))
	if s := status.Convert(err); s.Code() != codes.InvalidArgument || !strings.HasPrefix(s.Message(), "malformed UploadFileRequest: proto:") {
		t.Fatalf("an upload with a truncated chunk ended with %v, want InvalidArgument \"malformed UploadFileRequest: ...\"", err)
	}
	c := greeterpb.NewGreeterClient(conn)
	if _, err := c.StatFile(faultCtx(t), &greeterpb.MetaData{Filename: "cut.bin"}); status.Code(err) != codes.NotFound {
		t.Errorf("StatFile of the broken upload = %v, want NotFound", err)
	}
	if temps := r.temps(); len(temps) != 0 {
		t.Errorf("the broken upload left the temporaries %v", temps)
	}
}
