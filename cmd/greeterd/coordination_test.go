package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/internal/redistest"
	"github.com/greeter/greeter/service/s3store"
)

func TestStorageCoordination(t *testing.T) {
	none := openStorageCoordination(nil, slog.New(slog.DiscardHandler))
	var opts s3store.Options
	none.share(&opts)
	none.close()
	if none != nil || opts.Leases != nil || opts.Usage != nil {
		t.Fatal("without --redis-url the S3 store got shared leases or usage")
	}

	srv := redistest.Start(t)
	o, err := (&redisConfig{url: srv.URL()}).options(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	c := openStorageCoordination(o, slog.New(slog.NewTextHandler(&log, nil)))
	defer c.close()
	if !strings.Contains(log.String(), "upload leases and usage shared through redis") {
		t.Errorf("log: %s, want the sharing announced", log.String())
	}
	c.share(&opts)
	if opts.Leases == nil || opts.Usage == nil {
		t.Fatal("with --redis-url the S3 store shares nothing")
	}
	ctx := t.Context()
	lease, err := opts.Leases.Acquire(ctx, "upload", "stream-1")
	if err != nil {
		t.Fatal(err)
	}
	lease.Release()
	tally := func(context.Context, string) (coordination.Amount, map[string]coordination.Amount, error) {
		return coordination.Amount{Bytes: 5, Objects: 1}, nil, nil
	}
	u := opts.Usage(tally, nil)
	q := coordination.Amount{Bytes: 10}
	if err := u.Reserve(ctx, "alice", "up", coordination.Amount{Bytes: 5, Objects: 1}, q); err != nil {
		t.Fatal(err)
	}
	var qe *coordination.QuotaError
	if err := u.Reserve(ctx, "alice", "up2", coordination.Amount{Bytes: 1}, q); !errors.As(err, &qe) {
		t.Errorf("past the quota: %v, want a QuotaError", err)
	}
}
