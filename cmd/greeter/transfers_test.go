package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

func TestUploadJobs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.txt")
	tree := filepath.Join(dir, "tree")
	for _, p := range []string{file, filepath.Join(tree, "x.bin"), filepath.Join(tree, "sub", "y.bin")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(file, filepath.Join(tree, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(tree, "loop")); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.bin")
	for _, c := range []struct {
		name      string
		args      []string
		as        string
		recursive bool
		want      []string // object names, in order
		single    bool
		usage     string
	}{
		{"one file", []string{file}, "", false, []string{"a.txt"}, true, ""},
		{"one file renamed", []string{file}, "docs/b.txt", false, []string{"docs/b.txt"}, true, ""},
		{"several files", []string{file, missing}, "", false, []string{"a.txt", "missing.bin"}, false, ""},
		{"a directory", []string{tree}, "", false, []string{"link.txt", "sub/y.bin", "x.bin"}, false, ""},
		{"a directory with a prefix", []string{tree}, "backup/2024", false, []string{"backup/2024/link.txt", "backup/2024/sub/y.bin", "backup/2024/x.bin"}, false, ""},
		{"-r with a prefix", []string{tree, file}, "p", true, []string{"p/link.txt", "p/sub/y.bin", "p/x.bin", "p/a.txt"}, false, ""},
		{"--as with several files", []string{file, missing}, "x", false, nil, false, "--as names a single file"},
		{"the same name twice", []string{file, file}, "", false, nil, false, "would both be stored as"},
		{"nothing", nil, "", false, nil, false, "upload takes one FILE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			jobs, single, err := uploadJobs(c.args, c.as, c.recursive)
			if c.usage != "" {
				if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), c.usage) {
					t.Fatalf("uploadJobs: %v, want a usage error mentioning %q", err, c.usage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, j := range jobs {
				got = append(got, j.name)
			}
			if !slices.Equal(got, c.want) || single != c.single {
				t.Fatalf("uploadJobs named %q (single %v), want %q (single %v)", got, single, c.want, c.single)
			}
		})
	}
}

func TestDownloadJobs(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		names []string
		dest  string
		want  []string
		usage string
	}{
		{"one name here", []string{"docs/a.pdf"}, "", []string{"a.pdf"}, ""},
		{"one name to a file", []string{"docs/a.pdf"}, filepath.Join(dir, "b.pdf"), []string{filepath.Join(dir, "b.pdf")}, ""},
		{"one name into a directory", []string{"docs/a.pdf"}, dir, []string{filepath.Join(dir, "a.pdf")}, ""},
		{"several into a directory", []string{"a", "x/b"}, dir, []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}, ""},
		{"several into a file", []string{"a", "b"}, filepath.Join(dir, "nope"), nil, "-o must be an existing directory"},
		{"the same base name twice", []string{"x/a", "y/a"}, dir, nil, "would both be written to"},
		{"nothing", nil, "", nil, "download takes one or more NAME"},
	} {
		t.Run(c.name, func(t *testing.T) {
			jobs, err := downloadJobs(c.names, c.dest)
			if c.usage != "" {
				if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), c.usage) {
					t.Fatalf("downloadJobs: %v, want a usage error mentioning %q", err, c.usage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, j := range jobs {
				got = append(got, j.path)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("downloadJobs wrote to %q, want %q", got, c.want)
			}
		})
	}
}

// serve runs the real service on loopback without TLS and returns its
// address.
func serve(t *testing.T) string {
	t.Helper()
	store, err := diskstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	service.New(store, service.Options{DefaultOwner: "cli"}).Register(srv)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
		store.Close()
	})
	return lis.Addr().String()
}

// greeter runs the CLI against addr and returns its exit code and output.
func greeter(t *testing.T, addr string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	getenv := func(string) string { return "" }
	code = run(ctx, append([]string{"--plaintext", "--addr", addr}, args...), &out, &errOut, getenv)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, path string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParallelUploadReportsEveryFailure(t *testing.T) {
	addr := serve(t)
	dir := t.TempDir()
	var paths []string
	for i, name := range []string{"f1", "f2", "f3", "f4"} {
		p := filepath.Join(dir, name)
		if i != 2 {
			writeFile(t, p, 100<<10+i)
		}
		paths = append(paths, p)
	}
	code, stdout, stderr := greeter(t, addr, append([]string{"--json", "upload", "-j", "3"}, paths...)...)
	if code != exitFailure {
		t.Fatalf("upload with a missing file: exit %d, want %d\nstderr: %s", code, exitFailure, stderr)
	}
	var results []fileResult
	if err := json.Unmarshal([]byte(stdout), &results); err != nil || len(results) != 4 {
		t.Fatalf("--json printed %q (%v), want an array of 4 results", stdout, err)
	}
	for i, r := range results {
		if wantErr := i == 2; (r.Error != "") != wantErr || r.Name != filepath.Base(paths[i]) {
			t.Errorf("result %d: %+v, want name %s and an error only for the missing file", i, r, filepath.Base(paths[i]))
		}
		if i != 2 && (r.BytesSent != r.Size || r.Attempts != 1 || len(r.SHA256) != 64) {
			t.Errorf("result %d: %+v, want every byte sent once in 1 attempt", i, r)
		}
	}
	if !strings.Contains(stderr, "1 of 4 uploads failed") || !strings.Contains(stderr, paths[2]) {
		t.Errorf("stderr %q, want a summary naming %s", stderr, paths[2])
	}
	code, stdout, _ = greeter(t, addr, "ls")
	for _, name := range []string{"f1", "f2", "f4"} {
		if code != 0 || !strings.Contains(stdout, name) {
			t.Errorf("ls (exit %d) printed %q, want %s stored", code, stdout, name)
		}
	}
}

func TestParallelDirectoryRoundTrip(t *testing.T) {
	addr := serve(t)
	src := t.TempDir()
	files := map[string][]byte{}
	for _, rel := range []string{"a.bin", "sub/b.bin", "sub/deeper/c.bin", "d.bin", "e.bin"} {
		files[rel] = writeFile(t, filepath.Join(src, filepath.FromSlash(rel)), 64<<10+len(rel))
	}
	code, stdout, stderr := greeter(t, addr, "upload", "-r", src, "--as", "backup", "-j", "2")
	if code != 0 {
		t.Fatalf("upload -r: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if n := strings.Count(stdout, "uploaded backup/"); n != len(files) {
		t.Fatalf("upload -r printed %q, want %d lines", stdout, len(files))
	}

	dst := t.TempDir()
	var names []string
	for rel := range files {
		names = append(names, "backup/"+rel)
	}
	slices.Sort(names)
	code, stdout, stderr = greeter(t, addr, append([]string{"--json", "download", "-o", dst}, names...)...)
	if code != 0 {
		t.Fatalf("download of %d names: exit %d\nstdout: %s\nstderr: %s", len(names), code, stdout, stderr)
	}
	var results []fileResult
	if err := json.Unmarshal([]byte(stdout), &results); err != nil || len(results) != len(names) {
		t.Fatalf("--json printed %q (%v), want %d results", stdout, err, len(names))
	}
	for rel, data := range files {
		got, err := os.ReadFile(filepath.Join(dst, filepath.Base(rel)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("downloaded %s: %d bytes (%v), want the %d uploaded", rel, len(got), err, len(data))
		}
	}
	for _, r := range results {
		if r.BytesReceived != r.Size || r.Error != "" {
			t.Errorf("download result %+v, want every byte received once", r)
		}
	}
}

// TestParallelExitCodeIsTheFirstFailures: the exit code follows the first
// failure in argument order, whatever finished first.
func TestParallelExitCodeIsTheFirstFailures(t *testing.T) {
	addr := serve(t)
	dst := t.TempDir()
	for _, c := range []struct {
		names []string
		code  int
	}{
		{[]string{"missing.bin", "bad\\name"}, exitNotFound},
		{[]string{"bad\\name", "missing.bin"}, exitInvalid},
	} {
		code, _, stderr := greeter(t, addr, append([]string{"download", "-o", dst}, c.names...)...)
		if code != c.code {
			t.Errorf("download %q: exit %d, want %d\nstderr: %s", c.names, code, c.code, stderr)
		}
		for _, n := range c.names {
			if !strings.Contains(stderr, n) {
				t.Errorf("download %q: stderr %q does not name %s", c.names, stderr, n)
			}
		}
	}
	entries, _ := os.ReadDir(dst)
	if len(entries) != 0 {
		t.Errorf("failed downloads left %v behind", entries)
	}
}

func TestProgressBoard(t *testing.T) {
	var buf bytes.Buffer
	out := &output{stderr: &buf, interactive: true}
	b := out.progress(2)
	clock := b.start
	b.now = func() time.Time {
		clock = clock.Add(time.Second)
		return clock
	}
	one, two := b.add("one.bin"), b.add("two.bin")
	one.update(0, 1024)
	one.update(512, 1024)
	two.finish(nil)
	one.update(1024, 1024)
	one.finish(errors.New("x"))
	b.close()
	s := buf.String()
	for _, want := range []string{"one.bin", "two.bin", "1/2 files", "2/2 files (1 failed)", " 50%", "100%", "ETA "} {
		if !strings.Contains(s, want) {
			t.Errorf("the board drew %q, want it to show %q", s, want)
		}
	}
	if !strings.HasSuffix(s, "\x1b[1F\x1b[J") {
		t.Errorf("the board ended with %q, want it to clear its last line", s[max(0, len(s)-20):])
	}

	buf.Reset()
	quiet := (&output{stderr: &buf}).progress(3)
	bar := quiet.add("x")
	bar.update(1, 2)
	bar.finish(nil)
	quiet.close()
	if buf.Len() != 0 {
		t.Errorf("a board off a terminal drew %q, want nothing", buf.String())
	}
}
