package codec

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of chunk_data.
const (
	uploadChunkField   protowire.Number = 2 // UploadFileRequest.chunk_data (in a oneof)
	responseChunkField protowire.Number = 1 // FileResponse.chunk_data
)

// std is grpc's proto codec, which this codec hands everything else to.
var std = encoding.GetCodecV2(protocodec.Name)

// Codec is the encoding.CodecV2 of this package. The zero value is ready
// to use.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// Name returns "proto": the codec encodes the same bytes as grpc's proto
// codec, so peers see the usual content-type.
func (Codec) Name() string { return protocodec.Name }

// Marshal encodes v. A wrapper message holding a pooled chunk (SetChunk)
// is encoded without copying the chunk: grpc takes the buffer over and
// returns it to the pool once it was written.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *UploadFileRequest:
		if m.pooledChunk() {
			return m.c.give(uploadChunkField, true), nil
		}
	case *FileResponse:
		if m.pooledChunk() {
			return m.c.give(responseChunkField, false), nil
		}
	}
	return std.Marshal(v)
}

// Unmarshal decodes data into v. A wrapper message whose encoding is a
// lone chunk_data field gets its chunk in a pooled buffer; anything else
// decodes as proto.Unmarshal decodes it. Malformed input to an
// UploadFileRequest is not an error here but in the message (see
// UploadFileRequest.Err), so that the server answers InvalidArgument rather
// than grpc's Internal.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *UploadFileRequest:
		m.Reset()
		if buf, ok := take(data, uploadChunkField); ok {
			m.setChunk(buf)
			return nil
		}
		if err := std.Unmarshal(data, &m.UploadFileRequest); err != nil {
			m.UploadFileRequest.Reset()
			m.err = &DecodeError{Message: "UploadFileRequest", Err: err}
		}
		return nil
	case *FileResponse:
		m.Reset()
		if buf, ok := take(data, responseChunkField); ok {
			m.setChunk(buf)
			return nil
		}
		if err := std.Unmarshal(data, &m.FileResponse); err != nil {
			return &DecodeError{Message: "FileResponse", Err: err}
		}
		return nil
	}
	return std.Unmarshal(data, v)
}

// DecodeError is input that does not decode as the message it was meant
// to be. Its text names the message and proto's reason, never the input.
type DecodeError struct {
	Message string // the message type, such as "UploadFileRequest"
	Err     error
}

func (e *DecodeError) Error() string { return fmt.Sprintf("malformed %s: %v", e.Message, e.Err) }

func (e *DecodeError) Unwrap() error { return e.Err }

// maxHead is the longest tag and length prefix of a chunk_data field: a
// one-byte tag and a varint length.
const maxHead = 1 + binary.MaxVarintLen64

// take returns the chunk of a message whose whole encoding is one
// chunk_data field with number field, copied into a pooled buffer. It
// returns false for any other encoding, including malformed ones, which
// are left to proto.Unmarshal.
func take(data mem.BufferSlice, field protowire.Number) (*[]byte, bool) {
	var head [maxHead]byte
	h := 0
	for _, b := range data {
		h += copy(head[h:], b.ReadOnlyData())
		if h == len(head) {
			break
		}
	}
	num, typ, tn := protowire.ConsumeTag(head[:h])
	if tn < 0 || num != field || typ != protowire.BytesType {
		return nil, false
	}
	n, ln := protowire.ConsumeVarint(head[tn:h])
	skip := tn + ln
	if ln < 0 || n != uint64(data.Len()-skip) {
		return nil, false
	}
	buf := chunks.Get(int(n))
	dst := *buf
	for _, b := range data {
		src := b.ReadOnlyData()
		if skip >= len(src) {
			skip -= len(src)
			continue
		}
		dst = dst[copy(dst, src[skip:]):]
		skip = 0
	}
	return buf, true
}
