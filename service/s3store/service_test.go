package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service"
)

// serve runs the Greeter service on s over an in-memory listener for the
// length of t and returns a client; calls run as an anonymous owner.
func serve(t *testing.T, s *Store) pb.GreeterClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	service.New(s, service.Options{DefaultOwner: "tester"}).Register(srv)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufconn", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Stop() })
	return pb.NewGreeterClient(conn)
}

// sendResumable sends the first message of upload id of b as "f" at
// offset, then chunks of b[offset:end] (whose digests may be other's), and
// half-closes; it returns the status.
func sendResumable(t *testing.T, c pb.GreeterClient, id string, b, other []byte, offset, end int64) error {
	t.Helper()
	stream, err := c.UploadFile(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	size, sum := int64(len(b)), sha256.Sum256(b)
	md := &pb.MetaData{Filename: "f", Size: &size, Sha256: hex.EncodeToString(sum[:]), UploadId: id, Offset: offset}
	msgs := []*pb.UploadFileRequest{{Request: &pb.UploadFileRequest_Metadata{Metadata: md}}}
	for off := offset; off < end; off += 256 << 10 {
		msgs = append(msgs, &pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: other[off:min(off+256<<10, end)]}})
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			break // the status comes with CloseAndRecv
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

// wantStatus fails unless err has code and a message that mentions part.
func wantStatus(t *testing.T, err error, code codes.Code, part string) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), part) {
		t.Fatalf("status = %v %q, want %v mentioning %q", st.Code(), st.Message(), code, part)
	}
	return st
}

// TestServiceIncompleteReportsKeptOffset half-closes a resumable upload
// past a part boundary: the status names the end of the last whole part,
// which the store kept, so the client resumes there at once and finishes.
func TestServiceIncompleteReportsKeptOffset(t *testing.T) {
	c := serve(t, openStore(t, nil))
	b := data(2*testPart+10, 1)
	err := sendResumable(t, c, "inc", b, b, 0, testPart+1000)
	st := wantStatus(t, err, codes.FailedPrecondition, "resume upload")
	var kept string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == wire.ReasonUploadIncomplete {
			kept = info.GetMetadata()[wire.MetadataCommittedSize]
		}
	}
	if kept != strconv.Itoa(testPart) {
		t.Fatalf("committed size in %v = %q, want the end of the whole part, %d", st.Details(), kept, testPart)
	}
	if err := sendResumable(t, c, "inc", b, b, testPart, int64(len(b))); err != nil {
		t.Fatalf("resuming at the reported offset: %v", err)
	}
}

// TestServiceDigestMismatchStatus commits uploads whose bytes miss the
// declared digest: a resumable one, whose gathered bytes are wrong, ends
// with DataLoss; a plain one, whose client declared the wrong digest, with
// InvalidArgument.
func TestServiceDigestMismatchStatus(t *testing.T) {
	c := serve(t, openStore(t, nil))
	b, other := data(testPart+10, 1), data(testPart+10, 2)
	err := sendResumable(t, c, "dl", b, b, 0, testPart+1)
	wantStatus(t, err, codes.FailedPrecondition, "resume upload")
	err = sendResumable(t, c, "dl", b, other, testPart, int64(len(b)))
	wantStatus(t, err, codes.DataLoss, "do not match the declared sha256")

	stream, err := c.UploadFile(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	md := &pb.MetaData{Filename: "g", Sha256: hex.EncodeToString(sum[:])}
	stream.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: md}})
	stream.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: other[:1000]}})
	_, err = stream.CloseAndRecv()
	wantStatus(t, err, codes.InvalidArgument, "sha256 does not match")
}

// TestServiceDigestRequired begins a resumable upload that leaves its
// sha256 to the trailer: the S3 store cannot publish a digest it learns
// that late, so the status says DIGEST_REQUIRED and the client declares
// it up front instead.
func TestServiceDigestRequired(t *testing.T) {
	c := serve(t, openStore(t, nil))
	stream, err := c.UploadFile(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	size := int64(1000)
	md := &pb.MetaData{Filename: "f", Size: &size, UploadId: "nd"}
	stream.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: md}})
	_, err = stream.CloseAndRecv()
	st := wantStatus(t, err, codes.InvalidArgument, "must declare its sha256 up front")
	found := false
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == wire.ReasonDigestRequired && info.GetDomain() == wire.ErrorDomain {
			found = true
		}
	}
	if !found {
		t.Fatalf("details %v, want the ErrorInfo %s", st.Details(), wire.ReasonDigestRequired)
	}
}
