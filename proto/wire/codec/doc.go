// Package codec is the gRPC codec of greeter's file transfers. It moves the
// chunk_data of UploadFileRequest and FileResponse through pooled buffers:
// a received chunk is copied once, from grpc's receive buffers into one
// buffer of the pool, and nothing is allocated per chunk; a sent chunk is
// not copied at all, grpc writes it from the sender's buffer and returns
// that buffer to the pool once it is on the wire. Every other message, and
// every transfer message that is not a lone chunk (metadata, a message with
// unknown fields, malformed input), goes through grpc's proto codec, so
// what is accepted, and how it decodes, is exactly what proto.Unmarshal
// does.
//
// The fast path applies only to the wrapper types of this package
// (UploadFileRequest, FileResponse), which embed the generated messages and
// are proto messages themselves: a stream that uses them works with grpc's
// proto codec too, only with the usual copies. The codec is installed where
// it helps: greeterd forces it on the server (grpc.ForceServerCodecV2), the
// client forces it on its DownloadFile calls (grpc.ForceCodecV2). Its Name
// is "proto", so the content-type on the wire is unchanged.
//
// Ownership of a buffer: Buffer hands one out; SetChunk gives it to a
// message; Release gives it back to the pool, unless grpc took it over when
// the message was sent. A received message holds its chunk until Release
// (or until it is received into again).
package codec
