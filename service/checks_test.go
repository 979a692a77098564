package service_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
)

func wantCode(t *testing.T, err error, code codes.Code, msgPart string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("got %v (%q), want %v", st.Code(), st.Message(), code)
	}
	if !strings.Contains(st.Message(), msgPart) {
		t.Fatalf("got message %q, want it to mention %q", st.Message(), msgPart)
	}
}

// wantErrorInfo checks that err carries the greeter ErrorInfo reason with
// the committed size.
func wantErrorInfo(t *testing.T, err error, reason string, committed int64) {
	t.Helper()
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetReason() != reason || info.GetDomain() != "greeter" || info.GetMetadata()["committed_size"] != strconv.FormatInt(committed, 10) {
				t.Fatalf("got ErrorInfo %v, want reason %s, domain greeter, committed_size %d", info, reason, committed)
			}
			return
		}
	}
	t.Fatalf("got details %v in %v, want an ErrorInfo", st.Details(), err)
}

func (h *tester) wantCommitted(ctx context.Context, id string, want int64) {
	h.t.Helper()
	got, err := h.committed(ctx, id)
	if err != nil || got != want {
		h.t.Fatalf("QueryUpload(%q) = %d, %v; want %d, nil", id, got, err, want)
	}
}

func (h *tester) wantNoUpload(ctx context.Context, id string) {
	h.t.Helper()
	_, err := h.committed(ctx, id)
	wantCode(h.t, err, codes.NotFound, "not found")
}

// assertNothingStored checks that no file is visible and no temporary is left.
func (h *tester) assertNothingStored(owner string) {
	h.t.Helper()
	files, err := h.Store.List(context.Background(), owner, "", "", 10)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(files) != 0 {
		h.t.Errorf("got %d visible files (%v), want none", len(files), files[0].Name)
	}
	h.assertNoTemporaries()
}

func (h *tester) assertNoTemporaries() {
	h.t.Helper()
	if left := filesUnder(filepath.Join(h.Dir, "tmp")); len(left) > 0 {
		h.t.Errorf("temporaries left behind: %v", left)
	}
}

// assertNoUploadState checks that nothing is left below uploads/.
func (h *tester) assertNoUploadState() {
	h.t.Helper()
	if left := filesUnder(filepath.Join(h.Dir, "uploads")); len(left) > 0 {
		h.t.Errorf("upload state left behind: %v", left)
	}
}

// filesUnder lists the files below dir.
func filesUnder(dir string) []string {
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	return files
}

// assertInvisible checks that name cannot be seen through the API.
func (h *tester) assertInvisible(ctx context.Context, name string) {
	h.t.Helper()
	_, err := h.Client.StatFile(ctx, &pb.MetaData{Filename: name})
	wantCode(h.t, err, codes.NotFound, "not found")
	_, _, err = h.download(ctx, &pb.MetaData{Filename: name})
	wantCode(h.t, err, codes.NotFound, "not found")
	list, err := h.Client.ListFiles(ctx, &pb.ListFilesRequest{})
	if err != nil || len(list.GetFiles()) != 0 {
		h.t.Errorf("ListFiles = %v, %v; want no files", list.GetFiles(), err)
	}
}

// assertStored checks that name holds data.
func (h *tester) assertStored(ctx context.Context, name string, data []byte) {
	h.t.Helper()
	got, hdr, err := h.download(ctx, &pb.MetaData{Filename: name})
	if err != nil {
		h.t.Fatal(err)
	}
	if hexSum(got) != hexSum(data) || hdr.Get(wire.HeaderSHA256)[0] != hexSum(data) {
		h.t.Fatalf("got %d bytes with sha256 %s (header %v), want %d bytes with sha256 %s",
			len(got), hexSum(got), hdr.Get(wire.HeaderSHA256), len(data), hexSum(data))
	}
}
