package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/servicetest"
)

type uploadMsg = pb.UploadFileRequest

func meta(name string) *uploadMsg {
	return &uploadMsg{Request: &pb.UploadFileRequest_Metadata{Metadata: &pb.MetaData{Filename: name}}}
}

func metaWith(md *pb.MetaData) *uploadMsg {
	return &uploadMsg{Request: &pb.UploadFileRequest_Metadata{Metadata: md}}
}

func chunk(b []byte) *uploadMsg {
	return &uploadMsg{Request: &pb.UploadFileRequest_ChunkData{ChunkData: b}}
}

// resumeMeta is the first message of a resumable upload of data.
func resumeMeta(id, name string, data []byte, offset int64) *uploadMsg {
	size := int64(len(data))
	return metaWith(&pb.MetaData{Filename: name, Size: &size, Sha256: hexSum(data), UploadId: id, Offset: offset})
}

// resumeMsgs is a whole resumable upload of data[offset:] in chunks.
func resumeMsgs(id, name string, data []byte, offset int64, chunkSize int) []*uploadMsg {
	msgs := []*uploadMsg{resumeMeta(id, name, data, offset)}
	for off := int(offset); off < len(data); off += chunkSize {
		msgs = append(msgs, chunk(data[off:min(off+chunkSize, len(data))]))
	}
	return msgs
}

// send runs one upload made of msgs and returns the server's answer.
func (h *tester) send(ctx context.Context, msgs ...*uploadMsg) (*pb.StringResponse, error) {
	stream, err := h.Client.UploadFile(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			break // the server ended the call; CloseAndRecv has the status
		}
	}
	return stream.CloseAndRecv()
}

func (h *tester) upload(ctx context.Context, name string, data []byte, chunkSize int) (*pb.StringResponse, error) {
	msgs := []*uploadMsg{meta(name)}
	for off := 0; off < len(data); off += chunkSize {
		msgs = append(msgs, chunk(data[off:min(off+chunkSize, len(data))]))
	}
	return h.send(ctx, msgs...)
}

func (h *tester) download(ctx context.Context, md *pb.MetaData) ([]byte, metadata.MD, error) {
	stream, err := h.Client.DownloadFile(ctx, md)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			hdr, _ := stream.Header()
			return buf.Bytes(), hdr, nil
		}
		if err != nil {
			return nil, nil, err
		}
		buf.Write(msg.GetChunkData())
	}
}

// committed returns what QueryUpload reports for id.
func (h *tester) committed(ctx context.Context, id string) (int64, error) {
	st, err := h.Client.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: id})
	if err != nil {
		return 0, err
	}
	if st.GetUploadId() != id || st.GetComplete() {
		h.t.Errorf("QueryUpload(%q) = %v, want the same upload_id, not complete", id, st)
	}
	return st.GetCommittedSize(), nil
}

// interrupted sends the start of a resumable upload (data[offset:cut]),
// waits until the server has written at least reach bytes of the file and
// then cancels the call, as a broken connection would. It returns once the
// server's handler has finished.
func (h *tester) interrupted(ctx context.Context, id, name string, data []byte, offset, cut, reach int64, chunkSize int) {
	h.t.Helper()
	reached := h.Store.Reached(reach)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := h.Client.UploadFile(cctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, m := range resumeMsgs(id, name, data[:cut], offset, chunkSize) {
		if m.GetMetadata() != nil {
			m = resumeMeta(id, name, data, offset) // declare the whole file
		}
		if err := stream.Send(m); err != nil {
			h.t.Fatalf("Send: %v", err)
		}
	}
	select {
	case <-reached:
	case <-ctx.Done():
		h.t.Fatalf("the server never wrote %d bytes", reach)
	}
	cancel()
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
}

// partial uploads data[offset:cut] and half-closes, which leaves an
// incomplete upload committed up to cut.
func (h *tester) partial(ctx context.Context, id, name string, data []byte, offset, cut int64) {
	h.t.Helper()
	msgs := resumeMsgs(id, name, data[:cut], offset, 100)
	msgs[0] = resumeMeta(id, name, data, offset)
	_, err := h.send(ctx, msgs...)
	wantCode(h.t, err, codes.FailedPrecondition, "upload incomplete: "+strconv.FormatInt(cut, 10)+" of "+strconv.Itoa(len(data))+" bytes")
	wantErrorInfo(h.t, err, wire.ReasonUploadIncomplete, cut)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
}

// put stores data as name of the default owner directly in the store,
// bypassing the service.
func (h *tester) put(ctx context.Context, name string, data []byte) {
	h.t.Helper()
	up, err := h.Store.Create(ctx, servicetest.OwnerKey(servicetest.DefaultOwner), name)
	if err != nil {
		h.t.Fatal(err)
	}
	defer up.Abort()
	if _, err := up.Write(data); err != nil {
		h.t.Fatal(err)
	}
	if _, err := up.Commit(ctx, service.Expect{}); err != nil {
		h.t.Fatal(err)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
