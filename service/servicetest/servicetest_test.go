package servicetest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
	"github.com/greeter/greeter/service/servicetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// upload declares data under name through c, as a resumable upload when
// id is set, and sends its first n bytes.
func upload(ctx context.Context, c pb.GreeterClient, name, id string, data []byte, n int) (*pb.StringResponse, error) {
	stream, err := c.UploadFile(ctx)
	if err != nil {
		return nil, err
	}
	size := int64(len(data))
	sum := sha256.Sum256(data)
	md := &pb.MetaData{Filename: name, Size: &size, Sha256: hex.EncodeToString(sum[:]), UploadId: id}
	msgs := []*pb.UploadFileRequest{{Request: &pb.UploadFileRequest_Metadata{Metadata: md}}}
	if n > 0 {
		msgs = append(msgs, &pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: data[:n]}})
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			break // CloseAndRecv has the status
		}
	}
	return stream.CloseAndRecv()
}

func TestIdentityPlugin(t *testing.T) {
	s := servicetest.Start(t, servicetest.Config{})
	ctx := testCtx(t)
	if _, err := upload(servicetest.AsOwner(ctx, "bob"), s.Client, "b.txt", "", []byte("bob's"), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := upload(ctx, s.Client, "a.txt", "", []byte("alice's"), 7); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		owner string
		want  string
	}{{"bob", "b.txt"}, {servicetest.DefaultOwner, "a.txt"}} {
		files, err := s.Store.List(ctx, servicetest.OwnerKey(c.owner), "", "", 10)
		if err != nil || len(files) != 1 || files[0].Name != c.want {
			t.Errorf("files of %s: got %v, %v; want only %s", c.owner, files, err, c.want)
		}
	}
}

func TestWaitHandledAndAwait(t *testing.T) {
	s := servicetest.Start(t, servicetest.Config{})
	ctx := testCtx(t)
	const tag = "x-tag"
	_, err := s.Client.StatFile(metadata.AppendToOutgoingContext(ctx, tag, "one"), &pb.MetaData{Filename: "missing"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("StatFile of a missing file: got %v, want NotFound", err)
	}
	if _, err := s.Client.SayHello(ctx, &pb.HelloRequest{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	// The SayHello report is kept while an Await for StatFile passes it by.
	if err := s.WaitHandled(ctx, pb.Greeter_SayHello_FullMethodName); err != nil {
		t.Fatalf("WaitHandled(SayHello): %v", err)
	}
	call, err := s.Await(ctx, func(c servicetest.Call) bool { return c.Done && len(c.Header.Get(tag)) == 1 })
	if err != nil {
		t.Fatal(err)
	}
	if call.Method != pb.Greeter_StatFile_FullMethodName || status.Code(call.Err) != codes.NotFound {
		t.Errorf("got report %+v, want StatFile returning NotFound", call)
	}
	// Every report is returned once.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.WaitHandled(short, pb.Greeter_SayHello_FullMethodName); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a second WaitHandled(SayHello) after one call: got %v, want DeadlineExceeded", err)
	}
}

// TestFaultHookAndIdle holds an upload inside a Config.Stream hook, and
// checks that Idle waits for it and that the hook sees the caller.
func TestFaultHookAndIdle(t *testing.T) {
	entered, release := make(chan string), make(chan struct{})
	hook := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		if info.FullMethod != pb.Greeter_UploadFile_FullMethodName {
			return next(srv, ss)
		}
		md, _ := metadata.FromIncomingContext(ss.Context())
		entered <- md.Get(servicetest.OwnerHeader)[0]
		<-release
		return status.Error(codes.Unavailable, "injected")
	}
	s := servicetest.Start(t, servicetest.Config{Stream: []grpc.StreamServerInterceptor{hook}})
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := upload(servicetest.AsOwner(ctx, "carol"), s.Client, "f", "", []byte("x"), 1)
		done <- err
	}()
	if who := <-entered; who != "carol" {
		t.Errorf("the hook saw owner %q, want carol", who)
	}
	idle := s.Idle(pb.Greeter_UploadFile_FullMethodName)
	select {
	case <-idle:
		t.Fatal("Idle is closed while an upload runs")
	default:
	}
	close(release)
	<-idle
	if err := <-done; status.Code(err) != codes.Unavailable {
		t.Errorf("upload through the hook: got %v, want the injected Unavailable", err)
	}
}

// TestDialContext reaches the service through a client of the test's own.
func TestDialContext(t *testing.T) {
	s := servicetest.Start(t, servicetest.Config{})
	var dialed int
	conn, err := grpc.NewClient(servicetest.Target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			dialed++
			return s.DialContext(ctx, addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := pb.NewGreeterClient(conn).SayHello(testCtx(t), &pb.HelloRequest{Name: "dialer"})
	if err != nil || resp.GetMessage() == "" || dialed != 1 {
		t.Fatalf("SayHello over an own connection: %v, %v, %d dials; want an answer over one", resp, err, dialed)
	}
}

// TestStoreReachedRestartAndClock follows a resumable upload through the
// observed store, a restart and the fake clock.
func TestStoreReachedRestartAndClock(t *testing.T) {
	s := servicetest.Start(t, servicetest.Config{Options: service.Options{ResumableTTL: time.Hour}})
	ctx := testCtx(t)
	data := []byte("0123456789")
	reached := s.Store.Reached(4)
	// Declaring 10 bytes and sending 4 leaves an incomplete upload.
	_, err := upload(ctx, s.Client, "r", "up-1", data, 4)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a short resumable upload: got %v, want FailedPrecondition", err)
	}
	select {
	case <-reached:
	default:
		t.Fatal("Reached(4) is open after the server wrote 4 bytes")
	}

	s.Restart()
	st, err := s.Client.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: "up-1"})
	if err != nil || st.GetCommittedSize() != 4 {
		t.Fatalf("QueryUpload after a restart: %v, %v; want 4 bytes committed", st, err)
	}
	s.Clock.Advance(2 * time.Hour)
	_, err = s.Client.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: "up-1"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("QueryUpload two hours later with a TTL of one: got %v, want NotFound", err)
	}
}

func TestPlainAndStoreOptions(t *testing.T) {
	s := servicetest.Start(t, servicetest.Config{Plain: true, StoreOptions: []diskstore.Option{diskstore.WithMaxUploadsPerOwner(1)}})
	ctx := testCtx(t)
	_, err := s.Client.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: "x"})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("QueryUpload on a plain store: got %v, want Unimplemented", err)
	}
	if _, err := upload(ctx, s.Client, "p", "", []byte("plain"), 5); err != nil {
		t.Errorf("plain upload on a plain store: %v", err)
	}
}

// TestStopWaitsForHandlers stops the server while a handler runs: Stop
// returns only after it, and the store is closed.
func TestStopWaitsForHandlers(t *testing.T) {
	returned := make(chan struct{})
	hook := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		defer close(returned)
		return next(srv, ss)
	}
	s := servicetest.Start(t, servicetest.Config{Stream: []grpc.StreamServerInterceptor{hook}})
	ctx := testCtx(t)
	// The handler waits for a first message that never comes.
	if _, err := s.Client.UploadFile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Await(ctx, func(c servicetest.Call) bool { return c.Method == pb.Greeter_UploadFile_FullMethodName }); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	select {
	case <-returned:
	default:
		t.Fatal("Stop returned before the upload handler")
	}
	s.Stop() // a second Stop does nothing
}
