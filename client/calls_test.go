package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/greeter/greeter/client"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/servicetest"
)

// newClient returns a Client, without retries, of the service srv runs.
func newClient(t *testing.T, srv *servicetest.Server) *client.Client {
	t.Helper()
	c, err := client.New(servicetest.Target, client.Options{
		Plaintext:   true,
		Retry:       client.RetryPolicy{MaxAttempts: 1},
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(srv.DialContext)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pages answers ListFiles in place of the service, with one file a page,
// named "PREFIXfile-after-TOKEN", and the page token nextToken gives for
// the page after the one asked for with TOKEN. It counts the calls in
// calls.
func pages(nextToken func(token string) string, calls *atomic.Int32) grpc.UnaryServerInterceptor {
	return servicetest.Answer(pb.Greeter_ListFiles_FullMethodName, func(_ context.Context, req any) (any, error) {
		calls.Add(1)
		r := req.(*pb.ListFilesRequest)
		return &pb.ListFilesResponse{
			Files:         []*pb.FileInfo{{Name: r.GetPrefix() + "file-after-" + r.GetPageToken()}},
			NextPageToken: nextToken(r.GetPageToken()),
		}, nil
	})
}

// uploads records the metadata of every upload that reaches the service.
type uploads struct {
	mu   sync.Mutex
	sent []*pb.MetaData
}

// record is the stream interceptor that records the uploads.
func (u *uploads) record(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if info.FullMethod == pb.Greeter_UploadFile_FullMethodName {
		ss = &recordedUpload{ServerStream: ss, u: u}
	}
	return next(srv, ss)
}

// metadata returns the metadata of every upload recorded, and forgets it.
func (u *uploads) metadata() []*pb.MetaData {
	u.mu.Lock()
	defer u.mu.Unlock()
	sent := u.sent
	u.sent = nil
	return sent
}

// recordedUpload is an upload stream whose metadata message is recorded.
type recordedUpload struct {
	grpc.ServerStream
	u *uploads
}

func (s *recordedUpload) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	// The service receives into codec.UploadFileRequest, which embeds the
	// generated message.
	if md := m.(interface{ GetMetadata() *pb.MetaData }).GetMetadata(); err == nil && md != nil {
		s.u.mu.Lock()
		s.u.sent = append(s.u.sent, proto.Clone(md).(*pb.MetaData))
		s.u.mu.Unlock()
	}
	return err
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
			var calls atomic.Int32
			srv := servicetest.Start(t, servicetest.Config{Unary: []grpc.UnaryServerInterceptor{pages(tc.nextToken, &calls)}})
			c := newClient(t, srv)
			files, err := c.List(callContext(t), "p/")
			if !errors.Is(err, client.ErrEndlessListing) || !strings.Contains(err.Error(), tc.msg) || files != nil {
				t.Fatalf("List: %d files, %v; want ErrEndlessListing saying %q", len(files), err, tc.msg)
			}
			if _, ok := status.FromError(err); ok {
				t.Errorf("List failed with status %v, want a plain error: the server did not fail the call", status.Code(err))
			}
			if calls := calls.Load(); calls != int32(tc.calls) {
				t.Errorf("List made %d calls, want %d", calls, tc.calls)
			}
		})
	}
}

// TestListFollowsPages: a listing that ends is returned whole.
func TestListFollowsPages(t *testing.T) {
	var calls atomic.Int32
	srv := servicetest.Start(t, servicetest.Config{Unary: []grpc.UnaryServerInterceptor{pages(func(tok string) string {
		return map[string]string{"": "a", "a": "b"}[tok]
	}, &calls)}})
	c := newClient(t, srv)
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
	const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" // of "test"
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
				// A store without resumable uploads makes the client
				// fall back to plain ones.
				u := &uploads{}
				srv := servicetest.Start(t, servicetest.Config{Plain: !resumable, Stream: []grpc.StreamServerInterceptor{u.record}})
				c := newClient(t, srv)
				ctx := callContext(t)
				if tc.ifMatch != "" {
					// The files the uploads replace hold "test".
					for _, name := range []string{"f.bin", "g.bin"} {
						if _, err := c.Upload(ctx, name, strings.NewReader("test"), 4, nil); err != nil {
							t.Fatalf("Upload of %s: %v", name, err)
						}
					}
					u.metadata()
				}
				if _, err := c.UploadFile(ctx, path, "f.bin", nil, tc.opts...); err != nil {
					t.Fatalf("UploadFile: %v", err)
				}
				if _, err := c.Upload(ctx, "g.bin", strings.NewReader("x"), 1, nil, tc.opts...); err != nil {
					t.Fatalf("Upload: %v", err)
				}
				sent := u.metadata()
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
	srv := servicetest.Start(t, servicetest.Config{Unary: []grpc.UnaryServerInterceptor{
		servicetest.Answer(pb.Greeter_GetUsage_FullMethodName, func(context.Context, any) (any, error) { return want, nil }),
	}})
	c := newClient(t, srv)
	got, err := c.Usage(callContext(t))
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("Usage: %v, %v; want %v", got, err, want)
	}
}
