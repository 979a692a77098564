package service_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/servicetest"
)

func TestListStatDelete(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	names := []string{"a.txt", "docs/b.txt", "docs/c.txt", "docs/sub/d.txt", "e.txt"}
	for _, n := range names {
		if _, err := h.upload(ctx, n, []byte(n), 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.upload(servicetest.AsOwner(ctx, "bob"), "bob-only.txt", []byte("b"), 10); err != nil {
		t.Fatal(err)
	}

	var got []string
	req := &pb.ListFilesRequest{PageSize: 2}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		resp, err := h.Client.ListFiles(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range resp.GetFiles() {
			got = append(got, f.GetName())
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Fatalf("listing = %v, want %v", got, names)
	}

	resp, err := h.Client.ListFiles(ctx, &pb.ListFilesRequest{Prefix: "docs/"})
	if err != nil || len(resp.GetFiles()) != 3 {
		t.Fatalf("prefix docs/ listed %v, %v; want 3 files", resp.GetFiles(), err)
	}
	_, err = h.Client.ListFiles(ctx, &pb.ListFilesRequest{Prefix: "../"})
	wantCode(t, err, codes.InvalidArgument, "invalid prefix")
	_, err = h.Client.ListFiles(ctx, &pb.ListFilesRequest{PageToken: "!!!"})
	wantCode(t, err, codes.InvalidArgument, "page_token")

	info, err := h.Client.StatFile(ctx, &pb.MetaData{Filename: "docs/", Extension: "b.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetSize() != int64(len("docs/b.txt")) || info.GetSha256() != hexSum([]byte("docs/b.txt")) {
		t.Fatalf("stat = %v, want size %d sha256 %s", info, len("docs/b.txt"), hexSum([]byte("docs/b.txt")))
	}
	_, err = h.Client.StatFile(ctx, &pb.MetaData{Filename: "bob-only.txt"})
	wantCode(t, err, codes.NotFound, "not found")

	if _, err := h.Client.DeleteFile(ctx, &pb.MetaData{Filename: "docs/sub/d.txt"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.Client.DeleteFile(ctx, &pb.MetaData{Filename: "docs/sub/d.txt"})
	wantCode(t, err, codes.NotFound, "not found")
	_, err = h.Client.DeleteFile(ctx, &pb.MetaData{Filename: "bob-only.txt"})
	wantCode(t, err, codes.NotFound, "not found")
	_, err = h.Client.DeleteFile(ctx, &pb.MetaData{Filename: "a/../b"})
	wantCode(t, err, codes.InvalidArgument, "invalid name")
}

func TestQueryUploadErrors(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	for _, c := range []struct {
		id   string
		code codes.Code
		msg  string
	}{
		{"", codes.InvalidArgument, "invalid upload_id"},
		{"../etc", codes.InvalidArgument, "invalid upload_id"},
		{"a.b", codes.InvalidArgument, "invalid upload_id"},
		{strings.Repeat("z", 129), codes.InvalidArgument, "invalid upload_id"},
		{strings.Repeat("z", 128), codes.NotFound, "not found"},
		{"never-started_1", codes.NotFound, `upload "never-started_1" not found`},
	} {
		_, err := h.Client.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: c.id})
		wantCode(t, err, c.code, c.msg)
	}
}
