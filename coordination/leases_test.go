package coordination_test

import (
	"context"
	"errors"
	"testing"

	"github.com/greeter/greeter/coordination"
)

func TestLocalLeasesRefuseASecondHolder(t *testing.T) {
	l := coordination.NewLocalLeases()
	ctx := context.Background()
	first, err := l.Acquire(ctx, "up", "h1")
	if err != nil {
		t.Fatal(err)
	}
	if first.Lost() != nil {
		t.Error("a local lease can be lost, want never")
	}
	if _, err := l.Acquire(ctx, "up", "h2"); !errors.Is(err, coordination.ErrLeaseHeld) {
		t.Fatalf("second holder: got %v, want ErrLeaseHeld", err)
	}
	other, err := l.Acquire(ctx, "other", "h2")
	if err != nil {
		t.Fatalf("another key: %v", err)
	}
	other.Release()
	first.Release()
	first.Release() // does nothing more
	second, err := l.Acquire(ctx, "up", "h2")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	first.Release() // an old lease's release leaves the new holder alone
	if _, err := l.Acquire(ctx, "up", "h3"); !errors.Is(err, coordination.ErrLeaseHeld) {
		t.Errorf("after a stale release: got %v, want ErrLeaseHeld", err)
	}
	second.Release()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Acquire(cctx, "up", "h4"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
}
