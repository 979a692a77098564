package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/greeter/greeter/client"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

// recordingServer is a fake Greeter that stores nothing: uploads are
// answered with the size and SHA-256 of what arrived and their metadata is
// recorded; ListFiles pages by nextToken; GetUsage answers usage.
type recordingServer struct {
	pb.UnimplementedGreeterServer
	// resumable makes QueryUpload answer NotFound, so that UploadFile
	// sends resumable uploads; otherwise it answers Unimplemented and
	// UploadFile falls back to plain ones.
	resumable bool
	// nextToken returns the next_page_token of the page after the one
	// asked for with token.
	nextToken func(token string) string
	usage     *pb.Usage

	mu        sync.Mutex
	metadata  []*pb.MetaData
	listCalls int
}

func (s *recordingServer) UploadFile(stream grpc.ClientStreamingServer[pb.UploadFileRequest, pb.StringResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.metadata = append(s.metadata, proto.Clone(first.GetMetadata()).(*pb.MetaData))
	s.mu.Unlock()
	h := sha256.New()
	var n int64
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&pb.StringResponse{Message: "Success!", Size: n, Sha256: hex.EncodeToString(h.Sum(nil))})
		}
		if err != nil {
			return err
		}
		h.Write(m.GetChunkData())
		n += int64(len(m.GetChunkData()))
	}
}

func (s *recordingServer) QueryUpload(context.Context, *pb.QueryUploadRequest) (*pb.UploadStatus, error) {
	if s.resumable {
		return nil, status.Error(codes.NotFound, "no such upload")
	}
	return nil, status.Error(codes.Unimplemented, "no resumable uploads")
}

func (s *recordingServer) ListFiles(_ context.Context, r *pb.ListFilesRequest) (*pb.ListFilesResponse, error) {
	s.mu.Lock()
	s.listCalls++
	s.mu.Unlock()
	return &pb.ListFilesResponse{
		Files:         []*pb.FileInfo{{Name: r.GetPrefix() + "file-after-" + r.GetPageToken()}},
		NextPageToken: s.nextToken(r.GetPageToken()),
	}, nil
}

func (s *recordingServer) GetUsage(context.Context, *pb.UsageRequest) (*pb.Usage, error) {
	return s.usage, nil
}

// sent returns the metadata of every upload so far.
func (s *recordingServer) sent() []*pb.MetaData {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metadata
}

// newClient returns a Client of svc served over bufconn.
func newClient(t *testing.T, svc pb.GreeterServer) *client.Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	pb.RegisterGreeterServer(srv, svc)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	c, err := client.New("passthrough:///bufconn", client.Options{
		Plaintext: true,
		Retry:     client.RetryPolicy{MaxAttempts: 1},
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Stop()
		<-served
	})
	return c
}

func callContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestListStopsOnRepeatedPageToken: issue 12 item 11 (no row of its own in
// RELIABILITY §1.9): a server whose listing never ends
// (a page token seen before, or ever new tokens) makes List fail with
// ErrEndlessListing after a bounded number of calls, not loop forever.
func TestListStopsOnRepeatedPageToken(t *testing.T) {
	for _, tc := range []struct {
		name      string
		nextToken func(string) string
		calls     int
		msg       string
	}{
		{"the same token again", func(string) string { return "again" }, 2, "page 2 repeats the page token of page 1"},
		{"a cycle", func(tok string) string {
			return map[string]string{"": "a", "a": "b", "b": "c", "c": "a"}[tok]
		}, 4, "page 4 repeats the page token of page 1"},
		{"ever new tokens", func(tok string) string {
			n, _ := strconv.Atoi(tok)
			return strconv.Itoa(n + 1)
		}, client.MaxListPages, "more than 10000 pages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &recordingServer{nextToken: tc.nextToken}
			c := newClient(t, svc)
			files, err := c.List(callContext(t), "p/")
			if !errors.Is(err, client.ErrEndlessListing) || !strings.Contains(err.Error(), tc.msg) || files != nil {
				t.Fatalf("List: %d files, %v; want ErrEndlessListing saying %q", len(files), err, tc.msg)
			}
			if _, ok := status.FromError(err); ok {
				t.Errorf("List failed with status %v, want a plain error: the server did not fail the call", status.Code(err))
			}
			svc.mu.Lock()
			calls := svc.listCalls
			svc.mu.Unlock()
			if calls != tc.calls {
				t.Errorf("List made %d calls, want %d", calls, tc.calls)
			}
		})
	}
}

// TestListFollowsPages: a listing that ends is returned whole.
func TestListFollowsPages(t *testing.T) {
	c := newClient(t, &recordingServer{nextToken: func(tok string) string {
		return map[string]string{"": "a", "a": "b"}[tok]
	}})
	files, err := c.List(callContext(t), "")
	if err != nil || len(files) != 3 || files[2].GetName() != "file-after-b" {
		t.Fatalf("List: %v, %v; want the 3 files of 3 pages", files, err)
	}
}

// TestUploadSendsPreconditions: issue 12 item 11, client side: CreateOnly and IfMatch reach the server in
// the upload's metadata, on plain and resumable uploads alike, and are
// absent without them.
func TestUploadSendsPreconditions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(path, []byte("some bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	for _, tc := range []struct {
		name       string
		opts       []client.TransferOption
		createOnly bool
		ifMatch    string
	}{
		{"none", nil, false, ""},
		{"create only", []client.TransferOption{client.CreateOnly()}, true, ""},
		{"if match", []client.TransferOption{client.IfMatch(sum)}, false, sum},
	} {
		for _, resumable := range []bool{false, true} {
			t.Run(tc.name+" resumable="+strconv.FormatBool(resumable), func(t *testing.T) {
				svc := &recordingServer{resumable: resumable}
				c := newClient(t, svc)
				ctx := callContext(t)
				if _, err := c.UploadFile(ctx, path, "f.bin", nil, tc.opts...); err != nil {
					t.Fatalf("UploadFile: %v", err)
				}
				if _, err := c.Upload(ctx, "g.bin", strings.NewReader("x"), 1, nil, tc.opts...); err != nil {
					t.Fatalf("Upload: %v", err)
				}
				sent := svc.sent()
				if len(sent) != 2 || (sent[0].GetUploadId() != "") != resumable {
					t.Fatalf("the server saw %v, want 2 uploads, the first resumable=%v", sent, resumable)
				}
				for _, md := range sent {
					if md.GetCreateOnly() != tc.createOnly || md.GetIfMatch() != tc.ifMatch {
						t.Errorf("upload of %s sent create_only=%v if_match=%q, want %v %q", md.GetFilename(), md.GetCreateOnly(), md.GetIfMatch(), tc.createOnly, tc.ifMatch)
					}
				}
			})
		}
	}
}

// TestUsage: R11, client side (usage visible to the owner): Usage returns
// what GetUsage answers.
func TestUsage(t *testing.T) {
	want := &pb.Usage{Bytes: 3 << 20, Objects: 7, QuotaBytes: 1 << 30, QuotaObjects: 0}
	c := newClient(t, &recordingServer{usage: want})
	got, err := c.Usage(callContext(t))
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("Usage: %v, %v; want %v", got, err, want)
	}
}
