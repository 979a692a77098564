package service_test

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/servicetest"
)

// fuzzStreamKey is the metadata key through which a fuzz client names its
// stream, so that it can await the reports of that stream's handler.
const fuzzStreamKey = "x-fuzz-stream"

// awaitStream returns the report of the handler of stream starting (done
// false) or returning (done true).
func awaitStream(ctx context.Context, t *testing.T, s *servicetest.Server, stream string, done bool) servicetest.Call {
	t.Helper()
	call, err := s.Await(ctx, func(c servicetest.Call) bool {
		return c.Done == done && strings.Join(c.Header.Get(fuzzStreamKey), ",") == stream
	})
	if err != nil {
		t.Fatalf("stream %s: the handler never %s", stream, map[bool]string{false: "started", true: "returned"}[done])
	}
	return call
}

// fuzzUploads numbers owners and streams across all iterations of a process.
var fuzzUploads atomic.Int64

// checkFuzzStatus checks what any side of an upload may see: a status (never
// Unknown) of an expected kind, whose message carries no stack trace.
func checkFuzzStatus(t *testing.T, side string, err error) codes.Code {
	t.Helper()
	if err == nil {
		return codes.OK
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%s: got %T %v, want a status error", side, err, err)
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.ResourceExhausted, codes.FailedPrecondition, codes.Canceled:
	default:
		t.Errorf("%s: got %v (%q), want InvalidArgument, ResourceExhausted, FailedPrecondition or Canceled", side, st.Code(), st.Message())
	}
	if msg := st.Message(); strings.Contains(msg, "goroutine ") || strings.Contains(msg, ".go:") {
		t.Errorf("%s: message carries a stack trace: %q", side, msg)
	}
	return st.Code()
}

// FuzzUploadSequence sends arbitrary sequences of upload messages, stream
// ends and cancellations to a server on the real disk store, one stream
// after another, and keeps a model of what each owner should have stored.
// After every stream, once its handler returned:
//
//   - the status is OK exactly when the stream was a well-formed upload
//     (metadata with a valid name first and only there, declared size and
//     digest right if present, at most the maximum size, no name conflict,
//     half-closed rather than cancelled), and then the response names the
//     size and SHA-256 of the chunks sent;
//   - otherwise it is one of the expected codes, never Unknown, and both
//     sides see it without a stack trace;
//   - the owner's files are exactly the model's: a failed upload changes
//     nothing, a successful one stores the concatenation of its chunks;
//   - no temporary file is left in the data directory's tmp/.
func FuzzUploadSequence(f *testing.F) {
	const (
		a, b, dirC, dir, aSlash, deep, report, dirSplit = 0, 1, 2, 3, 4, 5, 6, 7
		empty, dotdot, abs, doubleSlash, dotSeg, nul    = 8, 9, 10, 11, 12, 13
		bidi, notNFC, long, backslash, dotdotExt        = 14, 15, 16, 17, 18
	)
	for _, seed := range [][]byte{
		seedOps(seedMeta(a, sizeNone, digestNone), seedChunk(16), seedChunk(96), seedEOF()),
		seedOps(seedMeta(report, sizeExact, digestRight), seedChunk(992), seedChunk(16), seedEOF()),
		seedOps(seedMeta(b, sizeExact, digestRight), seedEOF()), // empty file
		seedOps(seedEOF()),    // empty stream
		seedOps(seedCancel()), // cancelled before anything
		seedOps(seedChunk(16), seedMeta(a, sizeNone, digestNone), seedEOF()),                                                       // chunk first
		seedOps(seedMeta(a, sizeNone, digestNone), seedMeta(a, sizeNone, digestNone)),                                              // metadata twice
		seedOps(seedMeta(a, sizeNone, digestNone), seedChunk(32), seedMeta(b, 0, 0)),                                               // metadata after chunks
		seedOps(seedMeta(a, sizeNone, digestNone), seedChunk(320), seedCancel()),                                                   // cancelled mid-way
		seedOps(seedMeta(b, sizeNone, digestNone), seedBigChunk(), seedBigChunk()),                                                 // over the maximum
		seedOps(seedMeta(b, sizeOverMax, digestNone), seedChunk(16)),                                                               // declared over the maximum
		seedOps(seedMeta(b, sizeNegative, digestNone), seedChunk(16)),                                                              // negative size
		seedOps(seedMeta(b, sizeLess, digestNone), seedChunk(160), seedEOF()),                                                      // more than declared
		seedOps(seedMeta(b, sizeMore, digestNone), seedChunk(160), seedEOF()),                                                      // fewer than declared
		seedOps(seedMeta(b, sizeNone, digestWrong), seedChunk(160), seedEOF()),                                                     // digest mismatch
		seedOps(seedMeta(b, sizeNone, digestNotHex), seedChunk(160), seedEOF()),                                                    // digest not hex
		seedOps(seedMeta(b, sizeNone, digestShort), seedChunk(160), seedEOF()),                                                     // digest too short
		seedOps(seedMeta(b, sizeExact, digestWrong), seedBigChunk(), slices.Repeat(seedChunk(4064), 4), seedChunk(128), seedEOF()), // the maximum, wrong digest
		seedOps(seedMeta(b, sizeExact, digestRight), seedBigChunk(), slices.Repeat(seedChunk(4064), 4), seedChunk(128), seedEOF()), // exactly the maximum
		seedOps(seedMeta(b, sizeNone, digestNone), seedBigChunk(), slices.Repeat(seedChunk(4064), 4), seedChunk(144), seedEOF()),   // 16 bytes over
		// A failed upload over an existing file keeps the old version.
		seedOps(seedMeta(a, 0, 0), seedChunk(48), seedEOF(), seedMeta(a, 0, digestWrong), seedChunk(64), seedEOF(),
			seedMeta(a, 0, 0), seedChunk(64), seedCancel(), seedMeta(a, sizeLess, 0), seedChunk(64)),
		// A file where a folder is needed, and a folder where a file is.
		seedOps(seedMeta(a, 0, 0), seedChunk(16), seedEOF(), seedMeta(aSlash, 0, 0), seedChunk(16), seedEOF()),
		seedOps(seedMeta(dirC, 0, 0), seedChunk(16), seedEOF(), seedMeta(dir, 0, 0), seedChunk(16), seedEOF(),
			seedMeta(dirSplit, 0, 0), seedChunk(32), seedEOF()),
		seedOps(seedMeta(aSlash, 0, 0), seedChunk(16), seedEOF(), seedMeta(a, 0, 0), seedChunk(16), seedEOF(),
			seedMeta(deep, 0, 0), seedEOF()),
		// Invalid names, with and without chunks.
		seedOps(seedMeta(empty, 0, 0), seedChunk(16), seedEOF(), seedMeta(dotdot, 0, 0), seedEOF(),
			seedMeta(abs, 0, 0), seedChunk(16), seedMeta(doubleSlash, 0, 0), seedEOF(), seedMeta(nul, 0, 0), seedCancel(),
			seedMeta(dotSeg, 0, 0), seedEOF(), seedMeta(bidi, 0, 0), seedEOF(), seedMeta(notNFC, 0, 0), seedEOF(),
			seedMeta(long, 0, 0), seedEOF(), seedMeta(backslash, 0, 0), seedEOF(), seedMeta(dotdotExt, 0, 0), seedEOF()),
		// No explicit end: the stream is half-closed when the input ends.
		seedOps(seedMeta(deep, sizeExact, digestRight), seedChunk(4000)),
		// The longest sequence: 32 operations, the rest ignored.
		seedOps(seedMeta(a, 0, 0), slices.Repeat(seedChunk(16), 30), seedEOF(), seedEOF(), seedEOF()),
	} {
		f.Add(seed)
	}

	// The server reports when each upload's handler starts and returns
	// (with the error it returned), so a client can check the disk exactly
	// when the handler is done.
	s := servicetest.Start(f, servicetest.Config{Options: service.Options{MaxFileSize: fuzzMaxFile, IdleTimeout: 10 * time.Minute}})
	tmp := filepath.Join(s.Dir, "tmp")
	uploads := filepath.Join(s.Dir, "uploads")

	f.Fuzz(func(t *testing.T, input []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		owner := "fuzz-" + strconv.FormatInt(fuzzUploads.Add(1), 10)
		// The service stores under the caller's typed key.
		key := servicetest.OwnerKey(owner)
		model := map[string][]byte{} // what owner should have stored
		t.Cleanup(func() {
			for name := range model {
				if err := s.Store.Delete(context.Background(), key, name); err != nil {
					t.Errorf("cleanup: delete %q: %v", name, err)
				}
			}
			folder := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(key)))
			os.RemoveAll(filepath.Join(s.Dir, "objects", folder))
		})

		ops := decodeFuzzOps(input)
		for len(ops) > 0 {
			// One stream: the operations up to and including the first
			// cancel or end of stream.
			end := len(ops)
			for i, op := range ops {
				if op.kind == fuzzOpCancel || op.kind == fuzzOpEOF {
					end = i + 1
					break
				}
			}
			stream := ops[:end]
			ops = ops[end:]
			runFuzzStream(ctx, t, s, owner, model, stream)

			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Fatalf("temporaries left after the handler returned: %v", left)
			}
			if left, _ := os.ReadDir(uploads); len(left) > 0 {
				t.Fatalf("resumable state appeared for plain uploads: %v", left)
			}
			checkFuzzModel(ctx, t, s.Store, key, model, false)
		}
		checkFuzzModel(ctx, t, s.Store, key, model, true)
	})
}

// runFuzzStream sends one stream of ops for owner, checks its outcome
// against the model and updates the model.
func runFuzzStream(ctx context.Context, t *testing.T, s *servicetest.Server, owner string, model map[string][]byte, ops []fuzzOp) {
	t.Helper()
	num := int(fuzzUploads.Add(1))
	id := strconv.Itoa(num)

	// What the chunks carry, so that metadata can declare it.
	var data []byte
	for _, op := range ops {
		if op.kind == fuzzOpChunk {
			data = append(data, fuzzPattern(num, len(data), op.n)...)
		}
	}
	sum := sha256.Sum256(data)

	// The oracle: is this a well-formed upload that must succeed?
	wellFormed := len(ops) > 0 && ops[0].kind == fuzzOpMeta && ops[len(ops)-1].kind != fuzzOpCancel && len(data) <= fuzzMaxFile
	var name string
	if wellFormed {
		first := fuzzNames[ops[0].name]
		name = first.filename + first.extension
		wellFormed = first.ok &&
			(ops[0].size == sizeNone || ops[0].size == sizeExact) &&
			(ops[0].digest == digestNone || ops[0].digest == digestRight) &&
			!slices.ContainsFunc(ops[1:], func(op fuzzOp) bool { return op.kind == fuzzOpMeta })
		for stored := range model {
			if strings.HasPrefix(name, stored+"/") || strings.HasPrefix(stored, name+"/") {
				wellFormed = false // a file where a folder is needed, or the other way round
			}
		}
	}
	sctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(servicetest.AsOwner(ctx, owner), fuzzStreamKey, id))
	defer cancel()
	up, err := s.Client.UploadFile(sctx)
	if err != nil {
		t.Fatalf("stream %s: UploadFile: %v", id, err)
	}
	// Cancel only once the server runs the handler, so that every stream
	// reaches it and its outcome can be awaited.
	awaitStream(ctx, t, s, id, false)

	sending := true
	var clientErr error
	var resp *pb.StringResponse
	sent := 0
	for _, op := range ops {
		var msg *pb.UploadFileRequest
		switch op.kind {
		case fuzzOpMeta:
			msg = &pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: fuzzMetaData(op, len(data), sum)}}
		case fuzzOpChunk:
			msg = &pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: data[sent : sent+op.n]}}
			sent += op.n
		case fuzzOpCancel:
			cancel()
			_, clientErr = up.CloseAndRecv()
		case fuzzOpEOF:
			resp, clientErr = up.CloseAndRecv()
		}
		if msg != nil && sending {
			if err := up.Send(msg); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("stream %s: Send: got %v, want nil or io.EOF", id, err)
				}
				sending = false // the server ended the call; the status comes with CloseAndRecv
			}
		}
	}
	if last := ops[len(ops)-1].kind; last != fuzzOpCancel && last != fuzzOpEOF {
		resp, clientErr = up.CloseAndRecv()
	}
	serverErr := awaitStream(ctx, t, s, id, true).Err

	serverCode := checkFuzzStatus(t, "stream "+id+" handler", serverErr)
	clientCode := checkFuzzStatus(t, "stream "+id+" client", clientErr)
	if ops[len(ops)-1].kind != fuzzOpCancel && clientCode != serverCode {
		t.Errorf("stream %s: the client saw %v, the handler returned %v", id, clientErr, serverErr)
	}
	if wellFormed != (serverCode == codes.OK) {
		t.Fatalf("stream %s (%s): got %v, want OK: %v", id, describeFuzzOps(ops), serverErr, wellFormed)
	}
	if serverCode != codes.OK {
		return // the model stays as it was; the caller checks the disk agrees
	}
	if resp.GetSize() != int64(len(data)) || resp.GetSha256() != hex.EncodeToString(sum[:]) {
		t.Fatalf("stream %s: response %v, want size %d sha256 %x", id, resp, len(data), sum)
	}
	model[name] = data
}

// checkFuzzModel checks that owner's visible files are exactly the model's,
// and, if contents is set, that each holds the model's bytes.
func checkFuzzModel(ctx context.Context, t *testing.T, store service.Store, owner string, model map[string][]byte, contents bool) {
	t.Helper()
	infos, err := store.List(ctx, owner, "", "", len(model)+10)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var got, want []string
	for _, info := range infos {
		got = append(got, fmt.Sprintf("%s(%d)", info.Name, info.Size))
	}
	for name, data := range model {
		want = append(want, fmt.Sprintf("%s(%d)", name, len(data)))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stored files %v, want %v", got, want)
	}
	if !contents {
		return
	}
	for name, data := range model {
		f, err := store.Open(ctx, owner, name)
		if err != nil {
			t.Fatalf("open %q: %v", name, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, io.NewSectionReader(f, 0, f.Info().Size))
		f.Close()
		if err != nil {
			t.Fatalf("read %q: %v", name, err)
		}
		if got, want := hex.EncodeToString(h.Sum(nil)), fmt.Sprintf("%x", sha256.Sum256(data)); got != want {
			t.Fatalf("%q holds sha256 %s, want %s (the concatenation of its chunks)", name, got, want)
		}
	}
}
