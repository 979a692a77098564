package recovery_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/middleware/recovery"
	"github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/servicetest"
)

// Chunks starting with these make hookPanicker's hooks panic.
var (
	panicOnRecv = []byte("panic-on-recv")
	panicOnSend = []byte("panic-on-send")
)

// hookPanicker is a plugin whose OnRecv hook panics on an upload chunk that
// starts with panicOnRecv and whose OnSend hook panics on a download chunk
// that starts with panicOnSend. The real service runs both on goroutines
// it starts: the upload receiver and the download sender.
func hookPanicker() middleware.Plugin {
	return middleware.FromFunc("hook-panicker", func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		call.OnRecv(func(_ context.Context, m any) error {
			if r, ok := m.(*greeterpb.UploadFileRequest); ok && bytes.HasPrefix(r.GetChunkData(), panicOnRecv) {
				panic(greetertest.PanicValue)
			}
			return nil
		})
		call.OnSend(func(_ context.Context, m any) error {
			if r, ok := m.(*greeterpb.FileResponse); ok && bytes.HasPrefix(r.GetChunkData(), panicOnSend) {
				panic(greetertest.PanicValue)
			}
			return nil
		})
		return next(ctx)
	})
}

// TestHookPanicsOnServiceGoroutines runs the real service behind recovery
// and a plugin whose message hooks panic on the goroutines the service
// starts, where no interceptor can recover (RELIABILITY.md R9): the upload
// and the download end with Internal "internal error", the process (this
// test binary) lives on and keeps serving, the upload leaves nothing
// visible, and the stack of the panicking hook is logged server-side only.
func TestHookPanicsOnServiceGoroutines(t *testing.T) {
	var logs greetertest.LogBuffer
	var panics atomic.Int32
	rec := recovery.New(recovery.Options{
		Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
		OnPanic: func(context.Context, string) { panics.Add(1) },
	})
	hooks := hookPanicker()
	s := servicetest.Start(t, servicetest.Config{
		Unary:  []grpc.UnaryServerInterceptor{rec.Unary, hooks.Unary},
		Stream: []grpc.StreamServerInterceptor{rec.Stream, hooks.Stream},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The upload receiver's RecvMsg panics in the OnRecv hook.
	wantInternal(t, "upload whose OnRecv hook panics", upload(ctx, s.Client, "victim.bin", append(bytes.Clone(panicOnRecv), "payload"...)))
	if _, err := s.Client.StatFile(ctx, &greeterpb.MetaData{Filename: "victim.bin"}); status.Code(err) != codes.NotFound {
		t.Errorf("StatFile(victim.bin) after the aborted upload: got %v, want NotFound", err)
	}
	if tmp, err := os.ReadDir(filepath.Join(s.Dir, "tmp")); err != nil || len(tmp) != 0 {
		t.Errorf("tmp/ after the aborted upload holds %v (%v), want nothing", tmp, err)
	}

	// The download sender's SendMsg panics in the OnSend hook.
	if err := upload(ctx, s.Client, "bomb.bin", append(bytes.Clone(panicOnSend), "payload"...)); err != nil {
		t.Fatalf("uploading bomb.bin: %v", err)
	}
	wantInternal(t, "download whose OnSend hook panics", download(ctx, s.Client, "bomb.bin"))

	// The process lives on and serves; only bomb.bin is visible.
	list, err := s.Client.ListFiles(ctx, &greeterpb.ListFilesRequest{})
	if err != nil || len(list.GetFiles()) != 1 || list.GetFiles()[0].GetName() != "bomb.bin" {
		t.Errorf("ListFiles after the panics = %v, %v; want only bomb.bin", list.GetFiles(), err)
	}
	if got := panics.Load(); got != 2 {
		t.Errorf("recovered panics: got %d, want 2", got)
	}

	// Each panic is logged once, at ERROR, with its method and the stack of
	// the hook that panicked; the panic value is in no record.
	var methods []string
	for line := range strings.Lines(logs.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		if r["msg"] != "panic recovered" {
			continue
		}
		method, _ := r["method"].(string)
		methods = append(methods, method)
		if stack, _ := r["stack"].(string); r["level"] != "ERROR" || !strings.Contains(stack, "hookPanicker") {
			t.Errorf("panic record %v: want level ERROR and the panicking hook's stack", r)
		}
	}
	if want := []string{"/Greeter/UploadFile", "/Greeter/DownloadFile"}; !slices.Equal(methods, want) {
		t.Errorf("panic records for %v, want %v:\n%s", methods, want, logs.String())
	}
	if strings.Contains(logs.String(), greetertest.PanicValue) {
		t.Errorf("logs contain the panic value:\n%s", logs.String())
	}
}

// download reads name to the end and returns the call's error.
func download(ctx context.Context, c greeterpb.GreeterClient, name string) error {
	s, err := c.DownloadFile(ctx, &greeterpb.MetaData{Filename: name})
	if err != nil {
		return err
	}
	for {
		if _, err := s.Recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// upload stores data as name in one chunk and returns the call's error.
func upload(ctx context.Context, c greeterpb.GreeterClient, name string, data []byte) error {
	s, err := c.UploadFile(ctx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	size := int64(len(data))
	msgs := []*greeterpb.UploadFileRequest{{Request: &greeterpb.UploadFileRequest_Metadata{Metadata: &greeterpb.MetaData{
		Filename: name, Size: &size, Sha256: hex.EncodeToString(sum[:]),
	}}}}
	if len(data) > 0 {
		msgs = append(msgs, &greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: data}})
	}
	for _, m := range msgs {
		if err := s.Send(m); errors.Is(err, io.EOF) {
			break // the server ended the call; CloseAndRecv says why
		} else if err != nil {
			return err
		}
	}
	_, err = s.CloseAndRecv()
	return err
}

// wantInternal checks that err is Internal "internal error" with no detail.
func wantInternal(t *testing.T, what string, err error) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.Internal || st.Message() != "internal error" || len(st.Details()) != 0 {
		t.Errorf("%s: got %v %q %v, want Internal %q and no details", what, st.Code(), st.Message(), st.Details(), "internal error")
	}
}
