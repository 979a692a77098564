package diskstore

import (
	"log/slog"
	"os"
	"time"

	"github.com/greeter/greeter/service"
)

const (
	// DefaultWritebackInterval is how many bytes an upload writes between
	// two requests to start writing its dirty pages back to disk.
	DefaultWritebackInterval = 8 << 20

	// DefaultMaxUploadsPerOwner is how many incomplete resumable uploads
	// one owner may have at a time unless WithMaxUploadsPerOwner says
	// otherwise.
	DefaultMaxUploadsPerOwner = 16

	// DefaultCheckpointInterval is how many bytes a resumable upload
	// receives between two saves of its progress unless
	// WithCheckpointInterval says otherwise. A save costs two fsyncs and a
	// rename; at 8 MiB they cut the throughput of uploads to ext4 by
	// 20–40 % (bench/compare), and 64 MiB bounds what a crash makes a
	// client send again.
	DefaultCheckpointInterval = 64 << 20
)

// Option configures Open and OpenLive.
type Option func(*options)

// options holds every setting of a Store. defaultOptions gives each its
// default.
type options struct {
	logger             *slog.Logger
	writebackInterval  int64
	maxUploadsPerOwner int
	checkpointInterval int64
	now                func() time.Time
	// ownerKey maps layout-1 owners to their keys; see WithOwnerMigration.
	ownerKey func(owner string) string
	quotas   func(owner string) service.Quota

	// writeFile writes to an upload's file. Tests replace it to inject
	// write errors.
	writeFile func(f *os.File, p []byte) (int, error)
	// beforeRename, if set, runs in Commit between creating the target's
	// folders and the rename. Tests use it to race a Delete
	// deterministically.
	beforeRename func()
}

func defaultOptions() options {
	return options{
		logger:             slog.New(slog.DiscardHandler),
		writebackInterval:  DefaultWritebackInterval,
		maxUploadsPerOwner: DefaultMaxUploadsPerOwner,
		checkpointInterval: DefaultCheckpointInterval,
		now:                time.Now,
		writeFile:          (*os.File).Write,
	}
}

// WithLogger sets the logger for what the store does besides answering a
// call: digest repair, folder syncs that fail after the fact, replacing
// expired or unusable upload states, reopening the data directory and the
// janitor. Lines about a request carry its context. The default discards
// everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithWritebackInterval sets how many bytes an upload writes before it asks
// the kernel to start writing them back, so that the sync at Commit has
// little left to do. Zero or less turns this off. The default is
// DefaultWritebackInterval.
func WithWritebackInterval(n int64) Option {
	return func(o *options) { o.writebackInterval = n }
}

// WithMaxUploadsPerOwner sets how many incomplete resumable uploads one
// owner may have; starting one more fails with service.ErrTooManyUploads.
// Expired uploads do not count. Zero or less means no limit. The default is
// DefaultMaxUploadsPerOwner.
func WithMaxUploadsPerOwner(n int) Option {
	return func(o *options) { o.maxUploadsPerOwner = n }
}

// WithCheckpointInterval sets how many bytes a resumable upload receives
// between two saves of its progress (a sync of the part file and a new
// state). A broken stream that the server notices is always saved; this
// bounds what a crash loses. Zero or less saves only when an upload is
// suspended. The default is DefaultCheckpointInterval.
func WithCheckpointInterval(n int64) Option {
	return func(o *options) { o.checkpointInterval = n }
}

// WithClock sets the clock that stamps resumable uploads and decides when
// they expire. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithQuotas sets the quota of each owner (RELIABILITY.md R11): quotas is
// called with the owner whenever an upload starts or Usage is asked, and
// returns its limits, zero fields meaning none. The default is no quota.
func WithQuotas(quotas func(owner string) service.Quota) Option {
	return func(o *options) { o.quotas = quotas }
}
