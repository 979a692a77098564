package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/client"
)

// defaultJobs is how many transfers run at once by default: the server's
// default cap on concurrent transfers per identity.
const defaultJobs = 4

// transferFlags are the flags upload and download share.
type transferFlags struct {
	jobs     int
	noResume bool
	retries  int
}

func (f *transferFlags) register(fs *pflag.FlagSet) {
	f.jobs, f.retries = defaultJobs, client.DefaultRetryPolicy().MaxAttempts-1
	fs.IntVarP(&f.jobs, "j", "j", f.jobs, "transfers to run at once")
	fs.BoolVar(&f.noResume, "no-resume", false, "start every transfer and every retry from the first byte")
	fs.IntVar(&f.retries, "retries", f.retries, "retries of a transfer failing without progress (0: none)")
}

func (f *transferFlags) check() error {
	if f.jobs < 1 {
		return usageError{fmt.Errorf("-j must be at least 1, got %d", f.jobs)}
	}
	if f.retries < 0 {
		return usageError{fmt.Errorf("--retries must not be negative, got %d", f.retries)}
	}
	return nil
}

func (f *transferFlags) options() []client.TransferOption {
	opts := []client.TransferOption{client.WithRetry(client.RetryPolicy{MaxAttempts: f.retries + 1})}
	if f.noResume {
		opts = append(opts, client.NoResume())
	}
	return opts
}

// preconditionFlags are upload's conditions on what the server holds.
type preconditionFlags struct {
	createOnly bool
	ifMatch    string
}

func (f *preconditionFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.createOnly, "create-only", false, "store only files that do not exist on the server yet")
	fs.StringVar(&f.ifMatch, "if-match", "", "replace the file only if the stored one has this SHA-256 (hex)")
}

// options checks the flags for an upload of files files and returns them
// as transfer options.
func (f *preconditionFlags) options(files int) ([]client.TransferOption, error) {
	var opts []client.TransferOption
	if f.createOnly {
		opts = append(opts, client.CreateOnly())
	}
	if f.ifMatch == "" {
		return opts, nil
	}
	sum := strings.ToLower(f.ifMatch)
	switch {
	case f.createOnly:
		return nil, usageError{errors.New("--create-only and --if-match exclude each other: one wants no stored file, the other a given one")}
	case files != 1:
		return nil, usageError{fmt.Errorf("--if-match names the SHA-256 of one stored file; it takes a single FILE, got %d files", files)}
	case !isSHA256(sum):
		return nil, usageError{errors.New("--if-match must be a SHA-256 in 64 hex digits")}
	}
	return append(opts, client.IfMatch(sum)), nil
}

// isSHA256 reports whether s is a SHA-256 in lowercase hex.
func isSHA256(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) == 64 && s == strings.ToLower(s)
}

// job is one file to move.
type job struct {
	name string // the object name
	path string // the local path
	err  error  // set when the job failed before it could start
}

// outcome is what became of a job.
type outcome struct {
	job
	res client.Result
	err error
}

// fileResult is the JSON form of an outcome.
type fileResult struct {
	Name          string `json:"name"`
	Path          string `json:"path"`
	Size          int64  `json:"size"`
	SHA256        string `json:"sha256,omitempty"`
	BytesSent     int64  `json:"bytes_sent"`
	BytesReceived int64  `json:"bytes_received"`
	Attempts      int    `json:"attempts"`
	Error         string `json:"error,omitempty"`
}

func (o outcome) json() fileResult {
	r := fileResult{Name: o.name, Path: o.path, Size: o.res.Size, SHA256: o.res.SHA256,
		BytesSent: o.res.Sent, BytesReceived: o.res.Received, Attempts: o.res.Attempts}
	if o.err != nil {
		r.Error = describe(o.err)
	}
	return r
}

// transferFailures is the error of a command that moved several files and
// failed for some: every failure, in argument order. Its exit code is the
// first failure's.
type transferFailures struct {
	verb   string // "upload" or "download"
	total  int
	failed []outcome
}

func (e *transferFailures) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d %ss failed:", len(e.failed), e.total, e.verb)
	for _, o := range e.failed {
		fmt.Fprintf(&b, "\n  %s (%s): %s", o.name, o.path, describe(o.err))
	}
	return b.String()
}

// Unwrap returns the first failure, which decides the exit code.
func (e *transferFailures) Unwrap() error { return e.failed[0].err }

// runJobs runs do for every job, n at a time, with one progress board, and
// returns the outcomes in the order of jobs. Once ctx ends, jobs not
// started fail with its error.
func runJobs(ctx context.Context, jobs []job, n int, board *progressBoard, do func(context.Context, job, client.Progress) (client.Result, error)) []outcome {
	out := make([]outcome, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, len(jobs)) {
		wg.Go(func() {
			for i := range next {
				j := jobs[i]
				out[i] = outcome{job: j}
				switch {
				case j.err != nil:
					out[i].err = j.err
				case ctx.Err() != nil:
					out[i].err = status.FromContextError(ctx.Err()).Err()
				default:
					bar := board.add(j.name)
					out[i].res, out[i].err = do(ctx, j, bar.update)
					bar.finish(out[i].err)
				}
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	board.close()
	return out
}

// report prints the outcomes: with --json one object when the command named
// a single file (as greeter always did) and an array otherwise; as text one
// line per file moved. It returns the error the command fails with.
func report(out *output, verb string, outcomes []outcome, single bool, text func(outcome) string) error {
	var failed []outcome
	for _, o := range outcomes {
		if o.err != nil {
			failed = append(failed, o)
		}
	}
	if out.json {
		results := make([]fileResult, len(outcomes))
		for i, o := range outcomes {
			results[i] = o.json()
		}
		var v any = results
		if single {
			v = results[0]
		}
		if err := out.print(v, ""); err != nil {
			return err
		}
	} else {
		var lines []string
		for _, o := range outcomes {
			if o.err == nil {
				lines = append(lines, text(o))
			}
		}
		if err := out.print(nil, strings.Join(lines, "\n")); err != nil {
			return err
		}
	}
	switch {
	case len(failed) == 0:
		return nil
	case single:
		return failed[0].err
	default:
		return &transferFailures{verb: verb, total: len(outcomes), failed: failed}
	}
}

// uploadJobs lists the files to upload. A directory argument is uploaded
// recursively: its regular files (and symbolic links to regular files), named
// by their slash-separated path relative to it. as names a single file;
// with several arguments or with -r it is a prefix for every name. single
// reports that the command names one file (for the JSON shape).
func uploadJobs(args []string, as string, recursive bool) (jobs []job, single bool, err error) {
	if len(args) == 0 {
		return nil, false, usageError{errors.New("upload takes one FILE or DIR, or more")}
	}
	var prefix string
	switch {
	case as == "":
	case recursive:
		prefix = as
	case len(args) > 1:
		return nil, false, usageError{errors.New("--as names a single file; with several arguments use -r to make it a prefix")}
	}
	for _, arg := range args {
		st, err := os.Stat(arg)
		if err != nil || !st.IsDir() {
			name := filepath.Base(arg)
			switch {
			case prefix != "":
				name = path.Join(prefix, name)
			case as != "":
				name = as
			}
			// A missing or unreadable file fails on its own, later.
			jobs = append(jobs, job{name: name, path: arg})
			continue
		}
		if as != "" && len(args) == 1 {
			prefix = as
		}
		jobs = append(jobs, walkJobs(arg, prefix)...)
	}
	single = len(args) == 1 && len(jobs) == 1 && jobs[0].path == args[0]
	seen := make(map[string]string, len(jobs))
	for _, j := range jobs {
		if other, dup := seen[j.name]; dup {
			return nil, false, usageError{fmt.Errorf("%s and %s would both be stored as %q", other, j.path, j.name)}
		}
		seen[j.name] = j.path
	}
	if len(jobs) == 0 {
		return nil, false, fmt.Errorf("nothing to upload: no regular files in %s", strings.Join(args, ", "))
	}
	return jobs, single, nil
}

// walkJobs lists the files under dir, named prefix/relative-path.
func walkJobs(dir, prefix string) []job {
	var jobs []job
	add := func(p string, err error) {
		rel, rerr := filepath.Rel(dir, p)
		if rerr != nil {
			rel = filepath.Base(p)
		}
		jobs = append(jobs, job{name: path.Join(prefix, filepath.ToSlash(rel)), path: p, err: err})
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			// An unreadable directory fails as one job and is skipped.
			add(p, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
		case d.Type().IsRegular():
			add(p, nil)
		case d.Type()&fs.ModeSymlink != 0:
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				add(p, nil)
			}
		}
		return nil
	})
	return jobs
}

// downloadJobs lists the files to download and where each goes: with one
// NAME, to -o (a file, or a directory to put it in) or its base name here;
// with several, into the directory -o (default: here) under their base
// names.
func downloadJobs(names []string, dest string) ([]job, error) {
	if len(names) == 0 {
		return nil, usageError{errors.New("download takes one or more NAME arguments")}
	}
	isDir := func(p string) bool {
		st, err := os.Stat(p)
		return err == nil && st.IsDir()
	}
	if len(names) > 1 && dest != "" && !isDir(dest) {
		return nil, usageError{fmt.Errorf("-o must be an existing directory when downloading several files, got %s", dest)}
	}
	jobs := make([]job, len(names))
	seen := make(map[string]string, len(names))
	for i, name := range names {
		p := path.Base(name)
		switch {
		case dest == "":
		case len(names) == 1 && !isDir(dest):
			p = dest
		default:
			p = filepath.Join(dest, p)
		}
		if other, dup := seen[p]; dup {
			return nil, usageError{fmt.Errorf("%s and %s would both be written to %s", other, name, p)}
		}
		seen[p] = name
		jobs[i] = job{name: name, path: p}
	}
	return jobs, nil
}
