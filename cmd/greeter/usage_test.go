package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// fakeServer is a Greeter that stores nothing: it records the metadata of
// every upload and refuses a create-only upload of "exists", and GetUsage
// answers usage.
type fakeServer struct {
	pb.UnimplementedGreeterServer
	usage *pb.Usage

	mu       sync.Mutex
	metadata []*pb.MetaData
}

func (s *fakeServer) UploadFile(stream grpc.ClientStreamingServer[pb.UploadFileRequest, pb.StringResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	md := first.GetMetadata()
	s.mu.Lock()
	s.metadata = append(s.metadata, md)
	s.mu.Unlock()
	if md.GetCreateOnly() && md.GetFilename() == "exists" {
		return status.Error(codes.FailedPrecondition, "exists already exists")
	}
	h := sha256.New()
	var n int64
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&pb.StringResponse{Size: n, Sha256: hex.EncodeToString(h.Sum(nil))})
		}
		if err != nil {
			return err
		}
		h.Write(m.GetChunkData())
		n += int64(len(m.GetChunkData()))
	}
}

func (s *fakeServer) GetUsage(context.Context, *pb.UsageRequest) (*pb.Usage, error) {
	return s.usage, nil
}

// sent returns the metadata of every upload so far.
func (s *fakeServer) sent() []*pb.MetaData {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metadata
}

// serveFake serves svc on loopback without TLS and returns its address.
func serveFake(t *testing.T, svc pb.GreeterServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterGreeterServer(srv, svc)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return lis.Addr().String()
}

// TestUsageCommand: R11, client side: greeter usage prints what GetUsage
// reports, as text with human sizes and as JSON with exact numbers.
func TestUsageCommand(t *testing.T) {
	addr := serveFake(t, &fakeServer{usage: &pb.Usage{Bytes: 3 << 20, Objects: 7, QuotaBytes: 1 << 30}})
	code, stdout, stderr := greeter(t, addr, "usage")
	want := "bytes:    3.0 MiB of 1.0 GiB (0.3%)\nobjects:  7 (no quota)\n"
	if code != exitOK || stdout != want {
		t.Fatalf("usage: exit %d, printed %q, want %q\nstderr: %s", code, stdout, want, stderr)
	}
	code, stdout, _ = greeter(t, addr, "--json", "usage")
	var got map[string]int64
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != exitOK {
		t.Fatalf("--json usage: exit %d, printed %q (%v)", code, stdout, err)
	}
	if got["bytes"] != 3<<20 || got["objects"] != 7 || got["quota_bytes"] != 1<<30 || got["quota_objects"] != 0 || len(got) != 4 {
		t.Errorf("--json usage printed %v", got)
	}
	if code, _, stderr := greeter(t, addr, "usage", "extra"); code != exitUsage || !strings.Contains(stderr, "usage takes no arguments") {
		t.Errorf("usage with an argument: exit %d, stderr %q; want %d", code, stderr, exitUsage)
	}
}

// TestUploadPreconditionFlags: issue 12 item 11, client side: --create-only
// and --if-match reach the server in the upload's metadata, a failed
// condition exits 5, and contradictory or malformed flags are usage errors
// that send nothing.
func TestUploadPreconditionFlags(t *testing.T) {
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	for _, p := range []string{one, two} {
		if err := os.WriteFile(p, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const sum = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		createOnly bool
		ifMatch    string
		msg        string
	}{
		{"plain", []string{one}, exitOK, false, "", ""},
		{"create only", []string{"--create-only", one, two}, exitOK, true, "", ""},
		{"create only of an existing file", []string{"--create-only", one, "--as", "exists"}, exitInvalid, true, "", "FailedPrecondition"},
		{"if match", []string{one, "--if-match", sum}, exitOK, false, strings.ToLower(sum), ""},
		{"if match not hex", []string{one, "--if-match", strings.Repeat("g", 64)}, exitUsage, false, "", "64 hex digits"},
		{"if match too short", []string{one, "--if-match", "abc"}, exitUsage, false, "", "64 hex digits"},
		{"if match of several files", []string{one, two, "--if-match", sum}, exitUsage, false, "", "single FILE"},
		{"both", []string{one, "--create-only", "--if-match", sum}, exitUsage, false, "", "exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &fakeServer{}
			addr := serveFake(t, svc)
			code, _, stderr := greeter(t, addr, append([]string{"upload"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("upload %q: exit %d, stderr %q; want %d mentioning %q", tc.args, code, stderr, tc.code, tc.msg)
			}
			sent := svc.sent()
			if tc.code == exitUsage {
				if len(sent) != 0 {
					t.Errorf("a usage error sent %d uploads", len(sent))
				}
				return
			}
			if len(sent) == 0 {
				t.Fatal("nothing reached the server")
			}
			for _, md := range sent {
				if md.GetCreateOnly() != tc.createOnly || md.GetIfMatch() != tc.ifMatch {
					t.Errorf("upload of %s sent create_only=%v if_match=%q, want %v %q", md.GetFilename(), md.GetCreateOnly(), md.GetIfMatch(), tc.createOnly, tc.ifMatch)
				}
			}
		})
	}
}
