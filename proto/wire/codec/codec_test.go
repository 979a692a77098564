package codec

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// split cuts b into pieces of at most size bytes, as grpc delivers a
// message in the buffers of its HTTP/2 frames.
func split(b []byte, size int) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		n := min(size, len(b))
		s = append(s, mem.SliceBuffer(b[:n]))
		b = b[n:]
	}
	return s
}

func filled(n int) *[]byte {
	buf := Buffer(n)
	for i := range *buf {
		(*buf)[i] = byte(i * 7)
	}
	return buf
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMarshalMatchesProto pins that a pooled chunk is encoded byte for
// byte as proto encodes the same message, without copying it.
func TestMarshalMatchesProto(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16 << 10, 256<<10 + 3} {
		buf := filled(n)
		want := mustMarshal(t, &pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: bytes.Clone(*buf)}})
		var m UploadFileRequest
		m.SetChunk(buf)
		data, err := Codec{}.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		if got := data.Materialize(); !bytes.Equal(got, want) {
			t.Errorf("%d bytes: UploadFileRequest encodes to %d bytes, want proto's %d", n, len(got), len(want))
		}
		if n > 0 && &data[len(data)-1].ReadOnlyData()[0] != &(*buf)[0] {
			t.Errorf("%d bytes: the encoding copied the chunk", n)
		}
		if m.c.buf != nil {
			t.Errorf("%d bytes: the message still owns the buffer grpc took over", n)
		}
		data.Free()
		m.Reset()

		buf = filled(n)
		want = mustMarshal(t, &pb.FileResponse{ChunkData: bytes.Clone(*buf)})
		var r FileResponse
		r.SetChunk(buf)
		if data, err = (Codec{}).Marshal(&r); err != nil {
			t.Fatal(err)
		}
		if got := data.Materialize(); !bytes.Equal(got, want) {
			t.Errorf("%d bytes: FileResponse encodes to %d bytes, want proto's %d", n, len(got), len(want))
		}
		data.Free()
		r.Reset()
	}
}

// TestUnmarshalMatchesProto decodes chunks, the messages that take the
// proto path and malformed input, split into buffers of several sizes, and
// compares with proto.Unmarshal.
func TestUnmarshalMatchesProto(t *testing.T) {
	chunk := *filled(40 << 10)
	unknown := protowire.AppendBytes(protowire.AppendTag(nil, 99, protowire.BytesType), []byte("x"))
	chunkMsg := mustMarshal(t, &pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: chunk}})
	tests := []struct {
		name string
		in   []byte
		fast bool // decoded into a pooled buffer
	}{
		{"chunk", chunkMsg, true},
		{"empty chunk", mustMarshal(t, &pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{}}), true},
		{"metadata", mustMarshal(t, &pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: &pb.MetaData{Filename: "a.txt", Sha256: "00"}}}), false},
		{"trailer", mustMarshal(t, &pb.UploadFileRequest{Request: &pb.UploadFileRequest_Trailer{Trailer: &pb.UploadTrailer{Sha256: "ab"}}}), false},
		{"chunk then unknown field", append(bytes.Clone(chunkMsg), unknown...), false},
		{"unknown field then chunk", append(bytes.Clone(unknown), chunkMsg...), false},
		{"chunk twice", append(bytes.Clone(chunkMsg), chunkMsg...), false},
		{"empty message", nil, false},
		{"truncated chunk", chunkMsg[:len(chunkMsg)-1], false},
		{"length past the end", protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.BytesType), 1<<40), false},
		{"chunk field as varint", protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 5), false},
		{"field number zero", []byte{0x02, 0x00}, false},
		{"overlong varint", []byte{0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, false},
	}
	for _, tt := range tests {
		for _, size := range []int{1, 3, 16 << 10, 1 << 20} {
			var want pb.UploadFileRequest
			wantErr := proto.Unmarshal(tt.in, &want)
			var got UploadFileRequest
			if err := (Codec{}).Unmarshal(split(tt.in, size), &got); err != nil {
				t.Fatalf("%s/%d: Unmarshal = %v, want errors in the message", tt.name, size, err)
			}
			if (wantErr == nil) != (got.Err() == nil) {
				t.Fatalf("%s/%d: Err() = %v, proto.Unmarshal = %v", tt.name, size, got.Err(), wantErr)
			}
			if got.Err() != nil {
				if status.Code(got.Err()) != codes.InvalidArgument {
					t.Errorf("%s/%d: Err() = %v, want InvalidArgument", tt.name, size, got.Err())
				}
				continue
			}
			if !proto.Equal(&got.UploadFileRequest, &want) {
				t.Errorf("%s/%d: decoded %v, proto.Unmarshal %v", tt.name, size, &got.UploadFileRequest, &want)
			}
			if fast := got.c.buf != nil; fast != tt.fast {
				t.Errorf("%s/%d: pooled = %v, want %v", tt.name, size, fast, tt.fast)
			}
			got.Reset()
		}
	}
}

// TestUnmarshalFileResponse checks the client's side: a chunk decodes into
// a pooled buffer, and malformed input is an error naming the message.
func TestUnmarshalFileResponse(t *testing.T) {
	chunk := *filled(100 << 10)
	in := mustMarshal(t, &pb.FileResponse{ChunkData: chunk})
	var m FileResponse
	if err := (Codec{}).Unmarshal(split(in, 16<<10), &m); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.GetChunkData(), chunk) || m.c.buf == nil {
		t.Errorf("got %d bytes (pooled %v), want the %d-byte chunk in a pooled buffer", len(m.GetChunkData()), m.c.buf != nil, len(chunk))
	}
	err := Codec{}.Unmarshal(split(in[:len(in)-1], 16<<10), &m)
	var de *DecodeError
	if !errors.As(err, &de) || de.Message != "FileResponse" {
		t.Errorf("truncated FileResponse: Unmarshal = %v, want a DecodeError for FileResponse", err)
	}
	if m.c.buf != nil || len(m.GetChunkData()) != 0 {
		t.Errorf("a failed Unmarshal left the previous chunk in the message")
	}
}

// TestOtherMessagesUseProto pins that messages other than the wrappers go
// through grpc's proto codec unchanged.
func TestOtherMessagesUseProto(t *testing.T) {
	in := &pb.MetaData{Filename: "f", Offset: 7}
	data, err := Codec{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data.Materialize(), mustMarshal(t, in)) {
		t.Errorf("MetaData encoded differently from proto")
	}
	var out pb.MetaData
	if err := (Codec{}).Unmarshal(data, &out); err != nil || !proto.Equal(&out, in) {
		t.Errorf("MetaData round trip = %v, %v", &out, err)
	}
	if _, err := (Codec{}).Marshal("not a message"); err == nil {
		t.Errorf("Marshal of a string succeeded")
	}
}

// FuzzUnmarshal compares the codec with proto.Unmarshal on arbitrary input
// in arbitrary buffer splits: the same messages accepted, the same values.
func FuzzUnmarshal(f *testing.F) {
	chunk := bytes.Repeat([]byte("ab"), 300)
	f.Add(mustMarshalF(f, &pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: chunk}}), uint16(7))
	f.Add(mustMarshalF(f, &pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: &pb.MetaData{Filename: "x"}}}), uint16(1))
	f.Add(mustMarshalF(f, &pb.UploadFileRequest{Request: &pb.UploadFileRequest_Trailer{Trailer: &pb.UploadTrailer{Sha256: "ab"}}}), uint16(3))
	f.Add(mustMarshalF(f, &pb.FileResponse{ChunkData: chunk}), uint16(100))
	f.Add([]byte{0x12, 0x80}, uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, size uint16) {
		pieces := split(in, int(size%512)+1)

		var wantUp pb.UploadFileRequest
		wantErr := proto.Unmarshal(in, &wantUp)
		var up UploadFileRequest
		if err := (Codec{}).Unmarshal(pieces, &up); err != nil {
			t.Fatalf("Unmarshal(UploadFileRequest) = %v", err)
		}
		if (wantErr == nil) != (up.Err() == nil) {
			t.Fatalf("UploadFileRequest: Err() = %v, proto.Unmarshal = %v", up.Err(), wantErr)
		}
		if wantErr == nil && !proto.Equal(&up.UploadFileRequest, &wantUp) {
			t.Fatalf("UploadFileRequest: decoded %v, proto.Unmarshal %v", &up.UploadFileRequest, &wantUp)
		}
		up.Reset()

		var wantResp pb.FileResponse
		wantErr = proto.Unmarshal(in, &wantResp)
		var resp FileResponse
		err := Codec{}.Unmarshal(pieces, &resp)
		if (wantErr == nil) != (err == nil) {
			t.Fatalf("FileResponse: Unmarshal = %v, proto.Unmarshal = %v", err, wantErr)
		}
		if err == nil && !proto.Equal(&resp.FileResponse, &wantResp) {
			t.Fatalf("FileResponse: decoded %v, proto.Unmarshal %v", &resp.FileResponse, &wantResp)
		}
		resp.Reset()
	})
}

func mustMarshalF(f *testing.F, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
