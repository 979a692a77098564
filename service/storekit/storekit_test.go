package storekit_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storekit"
)

func TestVerify(t *testing.T) {
	sum := sha256.Sum256([]byte("abc"))
	other := sha256.Sum256([]byte("abd"))
	size := func(n int64) service.Expect { return service.Expect{Size: n, HasSize: true} }
	digest := func(s [32]byte) service.Expect { return service.Expect{SHA256: s, HasSHA256: true} }
	for _, c := range []struct {
		name  string
		wants []service.Expect
		want  error
	}{
		{"nothing declared", nil, nil},
		{"all match", []service.Expect{size(3), digest(sum)}, nil},
		{"size", []service.Expect{size(4)}, service.ErrSizeMismatch},
		{"digest", []service.Expect{digest(other)}, service.ErrDigestMismatch},
		// Every size is checked before any digest.
		{"size after a wrong digest", []service.Expect{digest(other), size(4)}, service.ErrSizeMismatch},
	} {
		err := storekit.Verify("teststore", "f", 3, sum, c.wants...)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}

	declared := service.Expect{Size: 3, HasSize: true, SHA256: other, HasSHA256: true}
	err := storekit.VerifyResumable("teststore", "f", 3, sum, declared, service.Expect{})
	if !errors.Is(err, service.ErrResumableDigestMismatch) {
		t.Errorf("VerifyResumable against its declared digest = %v, want ErrResumableDigestMismatch", err)
	}
	err = storekit.VerifyResumable("teststore", "f", 3, sum, service.Expect{}, digest(other))
	if !errors.Is(err, service.ErrDigestMismatch) || errors.Is(err, service.ErrResumableDigestMismatch) {
		t.Errorf("VerifyResumable against the commit's digest = %v, want a plain ErrDigestMismatch", err)
	}
}

// finishedUpload returns a Finished whose hooks count their calls.
func finishedUpload() (f *storekit.Finished, forgot, released *int) {
	forgot, released = new(int), new(int)
	data := []byte("abc")
	f = &storekit.Finished{Store: "teststore", ID: "up",
		Info:     service.FileInfo{Name: "f", Size: 3, SHA256: sha256.Sum256(data)},
		Declared: service.Expect{Size: 3, HasSize: true, SHA256: sha256.Sum256(data), HasSHA256: true},
		Forget:   func(context.Context) { *forgot++ },
		Release:  func(context.Context) { *released++ },
		Closed:   errors.New("closed"),
	}
	return f, forgot, released
}

func TestFinished(t *testing.T) {
	ctx := context.Background()
	f, forgot, released := finishedUpload()
	if n, err := f.Write(nil); n != 0 || err != nil {
		t.Errorf("Write(nil) = %d, %v; want 0, nil", n, err)
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, service.ErrSizeMismatch) {
		t.Errorf("Write of a byte = %v, want ErrSizeMismatch", err)
	}
	if f.Written() != 3 {
		t.Errorf("Written = %d, want 3", f.Written())
	}
	info, err := f.Commit(ctx, service.Expect{})
	if err != nil || info.Name != "f" || *forgot != 1 || *released != 1 {
		t.Fatalf("Commit = %+v, %v; forgot %d, released %d times; want the file, nil, 1, 1", info, err, *forgot, *released)
	}
	if _, err := f.Commit(ctx, service.Expect{}); err != f.Closed {
		t.Errorf("a second Commit = %v, want Closed", err)
	}
	f.Abort()
	f.Suspend()
	if *forgot != 1 || *released != 1 {
		t.Errorf("Abort and Suspend after Commit forgot %d and released %d times in all; want 1 and 1", *forgot, *released)
	}

	// A commit that declares other bytes fails, and still lets the upload go,
	// without forgetting it.
	f, forgot, released = finishedUpload()
	if _, err := f.Commit(ctx, service.Expect{Size: 4, HasSize: true}); !errors.Is(err, service.ErrSizeMismatch) {
		t.Errorf("Commit declaring 4 bytes = %v, want ErrSizeMismatch", err)
	}
	if *forgot != 0 || *released != 1 {
		t.Errorf("a failed Commit forgot %d and released %d times; want 0 and 1", *forgot, *released)
	}

	// Suspend lets the upload go and keeps its state; Abort forgets it.
	f, forgot, released = finishedUpload()
	f.Suspend()
	if *forgot != 0 || *released != 1 {
		t.Errorf("Suspend forgot %d and released %d times; want 0 and 1", *forgot, *released)
	}
	f, forgot, released = finishedUpload()
	f.Abort()
	if *forgot != 1 || *released != 1 {
		t.Errorf("Abort forgot %d and released %d times; want 1 and 1", *forgot, *released)
	}
}
