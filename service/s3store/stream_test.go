package s3store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/greeter/greeter/service"
)

// TestPartsSettleWhileTheNextStreams holds back the wait for each part's
// answer: the writer still streams the next part, so a stream never
// stops reading for a part's answer; the resumable upload's state counts
// a part only once its answer came; Commit waits for the parts and the
// file is right.
func TestPartsSettleWhileTheNextStreams(t *testing.T) {
	content := data(2*testPart+9, 41)
	for _, kind := range []string{"plain", "resumable"} {
		t.Run(kind, func(t *testing.T) {
			s := openStore(t, nil)
			held, release := make(chan struct{}, 4), make(chan struct{})
			s.onSettle = func() {
				held <- struct{}{}
				<-release
			}
			var up service.Upload
			if kind == "plain" {
				p, err := s.CreateSized(testCtx(t), owner, "f", int64(len(content)))
				if err != nil {
					t.Fatal(err)
				}
				up = p
			} else {
				up = begin(t, s, "id", content, 0)
			}

			// The first part and half the second: the Writes return
			// while the first part's answer is held back.
			wrote := make(chan error, 1)
			go func() { wrote <- writeUntilErr(up, content[:testPart+testPart/2]) }()
			select {
			case <-held:
			case err := <-wrote:
				t.Fatalf("the Writes of a full part and more returned (%v) before the part settled on its own goroutine", err)
			}
			select {
			case err := <-wrote:
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
			case <-time.After(20 * time.Second):
				close(release)
				t.Fatal("the Write after a full part waited for its answer")
			}
			if kind == "resumable" {
				if got, err := query(t, s, "id"); err != nil || got != 0 {
					t.Errorf("Query while the first part settles = %d, %v; want 0", got, err)
				}
			}
			close(release)
			if err := writeUntilErr(up, content[testPart+testPart/2:]); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if kind == "resumable" {
				settled(t, up.(*resumable))
				if got, err := query(t, s, "id"); err != nil || got != 2*testPart {
					t.Errorf("Query once the parts settled = %d, %v; want %d", got, err, 2*testPart)
				}
			}
			if _, err := up.Commit(testCtx(t), service.Expect{Size: int64(len(content)), HasSize: true}); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if got := get(t, s, "f"); !bytes.Equal(got, content) {
				t.Errorf("stored %d bytes that differ from the %d written", len(got), len(content))
			}
			assertClean(t, shared, s)
		})
	}
}

// TestSettlingFailureReachesTheNextWrite lets replica b claim an upload
// while a's first part settles: the settling part's state write fails, and
// a's next Write says so (ErrUploadBusy) without waiting for a part's end.
func TestSettlingFailureReachesTheNextWrite(t *testing.T) {
	a, b := replicas(t)
	content := data(3*testPart, 43)
	release := make(chan struct{})
	a.onSettle = func() { <-release }
	upA := begin(t, a, "id", content, 0)
	if err := writeUntilErr(upA, content[:testPart+1]); err != nil {
		t.Fatal(err)
	}
	upB := begin(t, b, "id", content, 0) // claims the state a saved last
	close(release)
	r := upA.(*resumable)
	r.mu.Lock()
	st := r.settling
	r.mu.Unlock()
	if st == nil {
		t.Fatal("no part settling after a full part's Write")
	}
	<-st.done
	if _, err := upA.Write(content[testPart+1 : testPart+2]); !errors.Is(err, service.ErrUploadBusy) {
		t.Fatalf("Write after the settling part failed = %v, want ErrUploadBusy", err)
	}
	if err := upA.Suspend(); err != nil {
		t.Errorf("Suspend of the broken writer: %v", err)
	}
	commitAll(t, b, upB, content, 0)
	assertClean(t, shared, b)
}

// TestSettlingPartCountsAfterTheRequestEnds ends the request of a stream
// (the client went away) while its first part settles and the second
// streams: the first part still counts at Suspend, so the client resends
// only what came after it, as it would have before parts settled.
func TestSettlingPartCountsAfterTheRequestEnds(t *testing.T) {
	s := openStore(t, nil)
	content := data(3*testPart, 44)
	release := make(chan struct{})
	s.onSettle = func() { <-release }
	ctx, cancel := context.WithCancel(testCtx(t))
	up, err := s.BeginResumable(ctx, owner, resume("id", "f", content, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeUntilErr(up, content[:testPart+testPart/2]); err != nil {
		t.Fatal(err)
	}
	cancel()
	close(release)
	if err := up.Suspend(); err != nil {
		t.Fatalf("Suspend after the request ended: %v", err)
	}
	if got, err := query(t, s, "id"); err != nil || got != testPart {
		t.Fatalf("Query after the request ended while a part settled = %d, %v; want %d", got, err, testPart)
	}
	commitAll(t, s, begin(t, s, "id", content, testPart), content, testPart)
	assertClean(t, shared, s)
}
