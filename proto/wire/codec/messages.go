package codec

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// chunk is the pooled buffer a wrapper message holds, if any.
type chunk struct {
	buf *[]byte
}

// release returns the buffer to the pool.
func (c *chunk) release() {
	if c.buf != nil {
		chunks.Put(c.buf)
		c.buf = nil
	}
}

// holds reports whether data is the buffer's whole content.
func (c *chunk) holds(data []byte) bool {
	if c.buf == nil || len(data) != len(*c.buf) {
		return false
	}
	return len(data) == 0 || &data[0] == &(*c.buf)[0]
}

// give encodes the buffer as field field and hands it to the returned
// BufferSlice, which puts it back into the pool when grpc frees it. A
// proto3 field outside a oneof (inOneof false) is not encoded when empty.
func (c *chunk) give(field protowire.Number, inOneof bool) mem.BufferSlice {
	buf := c.buf
	c.buf = nil
	if len(*buf) == 0 && !inOneof {
		chunks.Put(buf)
		return nil
	}
	head := protowire.AppendTag(make([]byte, 0, maxHead), field, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(*buf)))
	return mem.BufferSlice{mem.SliceBuffer(head), mem.NewBuffer(buf, &chunks)}
}

// UploadFileRequest is a pb.UploadFileRequest whose chunk_data may be held
// in a pooled buffer. It is a proto message, so grpc's proto codec handles
// it too.
type UploadFileRequest struct {
	pb.UploadFileRequest
	data pb.UploadFileRequest_ChunkData // the oneof member, reused
	c    chunk
	err  error
}

// Generated returns the generated message the wrapper holds, which is what
// server plugins' message hooks are given (they were written for it).
func (m *UploadFileRequest) Generated() proto.Message { return &m.UploadFileRequest }

// Reset releases the message's chunk and empties it.
func (m *UploadFileRequest) Reset() {
	m.c.release()
	m.data.ChunkData = nil
	m.err = nil
	m.UploadFileRequest.Reset()
}

// SetChunk makes m a chunk_data message of the bytes in *buf, a buffer
// from Buffer, which m owns from now on.
func (m *UploadFileRequest) SetChunk(buf *[]byte) {
	m.Reset()
	m.setChunk(buf)
}

func (m *UploadFileRequest) setChunk(buf *[]byte) {
	m.c.buf = buf
	m.data.ChunkData = *buf
	m.Request = &m.data
}

// pooledChunk reports whether m is a lone chunk_data held in its buffer.
func (m *UploadFileRequest) pooledChunk() bool {
	return m.Request == &m.data && m.c.holds(m.data.ChunkData) && len(m.ProtoReflect().GetUnknown()) == 0
}

// Err returns the InvalidArgument status of a message that did not decode,
// or nil.
func (m *UploadFileRequest) Err() error {
	if m.err == nil {
		return nil
	}
	return status.Error(codes.InvalidArgument, m.err.Error())
}

// FileResponse is a pb.FileResponse whose chunk_data may be held in a
// pooled buffer. It is a proto message, so grpc's proto codec handles it
// too.
type FileResponse struct {
	pb.FileResponse
	c chunk
}

// Generated returns the generated message the wrapper holds.
func (m *FileResponse) Generated() proto.Message { return &m.FileResponse }

// Reset releases the message's chunk and empties it.
func (m *FileResponse) Reset() {
	m.c.release()
	m.FileResponse.Reset()
}

// SetChunk makes m a message of the bytes in *buf, a buffer from Buffer,
// which m owns from now on.
func (m *FileResponse) SetChunk(buf *[]byte) {
	m.Reset()
	m.setChunk(buf)
}

func (m *FileResponse) setChunk(buf *[]byte) {
	m.c.buf = buf
	m.ChunkData = *buf
}

// pooledChunk reports whether m is a chunk_data held in its buffer.
func (m *FileResponse) pooledChunk() bool {
	return m.c.holds(m.ChunkData) && len(m.ProtoReflect().GetUnknown()) == 0
}
