package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/proto/greeterpb"
)

// openSlotUpload opens a raw UploadFile stream on conn that sends its
// MetaData (declaring 64 MiB) and one 64 KiB chunk and stays open. It
// returns the stream and, if the server already ended it, the error
// CloseAndRecv gives.
func openSlotUpload(ctx context.Context, conn *grpc.ClientConn, name string) (greeterpb.Greeter_UploadFileClient, error) {
	st, err := greeterpb.NewGreeterClient(conn).UploadFile(ctx)
	if err != nil {
		return nil, err
	}
	size := int64(64 << 20)
	md := &greeterpb.MetaData{Filename: name, Size: &size}
	for _, req := range []*greeterpb.UploadFileRequest{
		{Request: &greeterpb.UploadFileRequest_Metadata{Metadata: md}},
		{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: make([]byte, 64<<10)}},
	} {
		if err := st.Send(req); err != nil {
			if errors.Is(err, io.EOF) {
				_, err = st.CloseAndRecv()
				return nil, err
			}
			return nil, err
		}
	}
	return st, nil
}

// probeSlotUpload opens an upload like openSlotUpload, then closes it
// early: a refused upload answers ResourceExhausted, an admitted one
// another error (its declared size was not sent).
func probeSlotUpload(ctx context.Context, conn *grpc.ClientConn, name string) error {
	st, err := openSlotUpload(ctx, conn, name)
	if err != nil {
		return err
	}
	_, err = st.CloseAndRecv()
	if err == nil {
		return fmt.Errorf("a 64 KiB upload declaring 64 MiB succeeded")
	}
	return err
}

// TestReplicasShareTransferSlots runs three replicas with
// --max-transfers-per-identity 2: two open uploads of one identity on
// replicas A and B leave no slot for a third on C (the limit is shared,
// not 2 per replica). Once A is SIGKILLed, its slot's Redis lease (10 s)
// expires and an upload on C is admitted.
func TestReplicasShareTransferSlots(t *testing.T) {
	r := newReplicaRig(t, "--max-transfers-per-identity", "2", "--bandwidth-per-identity", "1MiB")
	conns := r.conns()
	ctx, cancel := context.WithTimeout(t.Context(), 2*faultWait)
	defer cancel()

	var open []greeterpb.Greeter_UploadFileClient
	for i := range 2 {
		st, err := openSlotUpload(ctx, conns[i], fmt.Sprintf("slot-%d.bin", i))
		if err != nil {
			t.Fatalf("upload %d on replica %d: %v", i, i, err)
		}
		open = append(open, st)
	}
	// Both uploads hold their slot once each replica counts them active.
	faultWaitFor(t, "an active upload on replicas A and B", func() bool {
		for i := range 2 {
			if metricValue(scrape(t, r.metrics[i]), "greeter_transfer_active", `direction="upload"`) < 1 {
				return false
			}
		}
		return true
	})

	err := probeSlotUpload(ctx, conns[2], "slot-2.bin")
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a third upload of the identity on replica C: %v, want ResourceExhausted (2 slots shared by the replicas)", err)
	}
	t.Logf("third upload on replica C refused: %v", err)

	// Upload B must still be running: C's refusal took no slot of it.
	if metricValue(scrape(t, r.metrics[1]), "greeter_transfer_active", `direction="upload"`) < 1 {
		t.Fatalf("replica B no longer counts its upload active")
	}

	r.srvs[0].Kill()
	killed := time.Now()
	const deadline = 20 * time.Second
	var last error
	admitted := faultPoll(deadline, func() bool {
		last = probeSlotUpload(ctx, conns[2], "slot-after.bin")
		if status.Code(last) == codes.ResourceExhausted {
			time.Sleep(500 * time.Millisecond)
			return false
		}
		return true
	})
	if !admitted {
		t.Fatalf("replica A was SIGKILLed %v ago; an upload on C is still refused: %v", deadline, last)
	}
	took := time.Since(killed)
	t.Logf("upload on replica C admitted %v after replica A's SIGKILL (answer: %v)", took.Round(time.Millisecond), last)
	if c := status.Code(last); c == codes.Unavailable || c == codes.DeadlineExceeded {
		t.Fatalf("the upload on C after the kill failed with %v, want admitted", last)
	}

	open[1].CloseSend()
	for i, s := range r.srvs {
		if i == 0 {
			continue
		}
		if strings.Contains(s.Log.String(), "panic") {
			t.Errorf("replica %d logged a panic:\n%s", i, s.Log.String())
		}
	}
}
