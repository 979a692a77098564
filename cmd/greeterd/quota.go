package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/greeter/greeter/internal/envflag"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

// Per-owner quotas (RELIABILITY.md R11). Every owner gets --quota-bytes and
// --quota-objects unless --quota-file names it.
//
// The defaults are finite, because one tenant filling the disk is the
// failure they prevent, and an unlimited default protects no one who did
// not read the manual: 10 GiB is ten files of the default --max-file-size,
// ample for a person's or a service's working set yet a small share of a
// server's disk; 100,000 files bound the walk that computes an owner's
// usage after a restart (0.95 s for 100,000 files on ext4 with a warm
// cache, in the background scan or at the owner's first upload) and the
// inodes one owner takes. 0 lifts a limit. Operators size them to the disk and the number
// of tenants, and give the few heavy owners more in --quota-file.
const (
	defaultQuotaBytes   = 10 << 30
	defaultQuotaObjects = 100_000
	// maxQuotaFile bounds how much of --quota-file is read.
	maxQuotaFile = 4 << 20
)

// quotaConfig holds the quota flags.
type quotaConfig struct {
	bytes   envflag.Size
	objects int64
	file    string
}

func (q *quotaConfig) flags(fs *flag.FlagSet) {
	q.bytes = defaultQuotaBytes
	fs.Var(&q.bytes, "quota-bytes", "bytes each owner may store, incomplete uploads included at their declared size (0: no limit)")
	fs.Int64Var(&q.objects, "quota-objects", defaultQuotaObjects, "files each owner may store, incomplete uploads included (0: no limit)")
	fs.StringVar(&q.file, "quota-file", "", "JSON file of per-owner quotas that override --quota-bytes and --quota-objects")
}

// quotaTable is every owner's quota: a default and the owners named in
// --quota-file. It is read once at start-up.
type quotaTable struct {
	def    service.Quota
	owners map[string]service.Quota
}

// For returns owner's quota; it has the signature diskstore.WithQuotas
// takes.
func (t *quotaTable) For(owner string) service.Quota {
	if q, ok := t.owners[owner]; ok {
		return q
	}
	return t.def
}

// load checks the flags and reads --quota-file.
func (q *quotaConfig) load() (*quotaTable, error) {
	if q.objects < 0 {
		return nil, usageError{fmt.Errorf("--quota-objects must not be negative, got %d", q.objects)}
	}
	t := &quotaTable{def: service.Quota{Bytes: int64(q.bytes), Objects: q.objects}}
	if q.file == "" {
		return t, nil
	}
	f, err := os.Open(q.file)
	if err != nil {
		return nil, usageError{fmt.Errorf("--quota-file: %v", err)}
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxQuotaFile+1))
	if err != nil {
		return nil, usageError{fmt.Errorf("--quota-file: %v", err)}
	}
	if len(raw) > maxQuotaFile {
		return nil, usageError{fmt.Errorf("--quota-file %s is larger than %d bytes", q.file, maxQuotaFile)}
	}
	if t.owners, err = parseQuotaFile(raw, t.def); err != nil {
		return nil, usageError{fmt.Errorf("--quota-file %s: %v", q.file, err)}
	}
	return t, nil
}

// quotaFile is the format of --quota-file:
//
//	{"owners": {
//	  "jwt:https://idp.example.com:alice": {"bytes": "100GiB", "objects": 1000000},
//	  "x509-uri:spiffe://greeter.local/svc/backup": {"bytes": 0}
//	}}
//
// Keys are owner keys, exactly as the server logs them. bytes is a number
// or a size string ("100GiB"); a field left out takes the default of its
// flag; 0 means no limit.
type quotaFile struct {
	Owners map[string]struct {
		Bytes   *quotaSize `json:"bytes"`
		Objects *int64     `json:"objects"`
	} `json:"owners"`
}

// quotaSize is a byte count in JSON: a number or an envflag size string.
type quotaSize int64

func (z *quotaSize) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		s = string(b) // a number
	}
	n, err := envflag.ParseSize(s)
	if err != nil {
		return err
	}
	*z = quotaSize(n)
	return nil
}

// parseQuotaFile reads the owners of a --quota-file, filling what they
// leave out from def.
func parseQuotaFile(raw []byte, def service.Quota) (map[string]service.Quota, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var file quotaFile
	if err := dec.Decode(&file); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the JSON object")
	}
	out := make(map[string]service.Quota, len(file.Owners))
	for owner, o := range file.Owners {
		if owner == "" || len(owner) > diskstore.MaxOwnerLen {
			return nil, fmt.Errorf("owner keys must be 1 to %d bytes long, got one of %d", diskstore.MaxOwnerLen, len(owner))
		}
		q := def
		if o.Bytes != nil {
			q.Bytes = int64(*o.Bytes)
		}
		if o.Objects != nil {
			if *o.Objects < 0 {
				return nil, fmt.Errorf("owner %s: objects must not be negative, got %d", strconv.Quote(owner), *o.Objects)
			}
			q.Objects = *o.Objects
		}
		out[owner] = q
	}
	return out, nil
}

// usageScanner computes every owner's usage; *diskstore.Live implements
// it.
type usageScanner interface {
	ScanUsage(ctx context.Context) error
	UsageTotals() (bytes, objects int64)
}

// scanUsage computes the usage of every owner in the background, so that
// the storage metrics cover the whole data directory and no owner's first
// upload waits for its walk; it logs the outcome once. The returned func
// stops the scan and waits for it, so the store may be closed once it
// returns.
func scanUsage(ctx context.Context, store usageScanner, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		if err := store.ScanUsage(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("computing storage usage failed", slog.Any("error", err))
			}
			return
		}
		b, n := store.UsageTotals()
		log.Info("storage usage computed", slog.Int64("bytes", b), slog.Int64("objects", n), slog.Duration("took", time.Since(start)))
	}()
	return func() {
		cancel()
		<-done
	}
}
