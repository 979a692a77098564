package storetest

import (
	"bytes"
	"errors"
	"io"

	"github.com/greeter/greeter/service"
)

// fileBehaviours are those of committed files: reading while the file
// changes, deleting, and names that are not there.
var fileBehaviours = []behaviour{
	{name: "DeleteDuringDownload", run: func(e *env) { changeDuringDownload(e, false) }},
	{name: "ReplaceDuringDownload", run: func(e *env) { changeDuringDownload(e, true) }},
	{name: "Delete", run: deleteFiles},
	{name: "NotFound", run: notFound},
}

// readChunk is how many bytes one ReadAt of a download asks for.
const readChunk = 8 << 10

// changeDuringDownload opens a file, reads some of it, deletes or replaces
// it, and reads on. The File keeps reading the version it opened or, as
// Harness.ChangedReadErr states, fails with that error: it never returns
// bytes of another version.
func changeDuringDownload(e *env, replace bool) {
	old := data(2*e.block()+readChunk+1, 1)
	info := e.put(alice, "f", old)
	f, err := e.s.Open(e.ctx, alice, "f")
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if got := f.Info(); got.Size != info.Size || got.SHA256 != info.SHA256 {
		e.t.Fatalf("Info = %+v, want %+v", got, info)
	}
	buf := make([]byte, readChunk)
	if n, err := f.ReadAt(buf, 0); n != len(buf) || err != nil || !bytes.Equal(buf, old[:n]) {
		e.t.Fatalf("first ReadAt = %d, %v; want %d bytes of the file", n, err, len(buf))
	}

	newer := data(int64(len(old)), 2)
	if replace {
		e.put(alice, "f", newer)
		e.wantFile(alice, "f", newer)
	} else {
		if err := e.s.Delete(e.ctx, alice, "f"); err != nil {
			e.t.Fatalf("Delete during a download = %v", err)
		}
		e.wantNoFile(alice, "f")
	}

	for off := int64(len(buf)); off < int64(len(old)); off += int64(len(buf)) {
		n, err := f.ReadAt(buf, off)
		if errors.Is(err, io.EOF) && off+int64(n) == int64(len(old)) {
			err = nil
		}
		if !bytes.Equal(buf[:n], old[off:off+int64(n)]) {
			e.t.Fatalf("ReadAt(%d) after the change returned bytes that are not the opened version's", off)
		}
		switch {
		case err == nil && n == min(len(buf), len(old)-int(off)):
			continue
		case err != nil && e.h.ChangedReadErr != nil && errors.Is(err, e.h.ChangedReadErr):
			return // the stated behaviour: the download ends with it
		case err != nil && e.h.ChangedReadErr != nil:
			e.t.Fatalf("ReadAt(%d) after the change = %d, %v; want the opened version or an error wrapping %q", off, n, err, e.h.ChangedReadErr)
		default:
			e.t.Fatalf("ReadAt(%d) after the change = %d, %v; want the opened version (Harness.ChangedReadErr is nil)", off, n, err)
		}
	}
}

// deleteFiles deletes files: they are gone, their neighbours stay, the
// name can be used again, and deleting what is not there fails with
// ErrNotFound.
func deleteFiles(e *env) {
	deep, keep := data(10, 1), data(20, 2)
	e.put(alice, "x/y/z", deep)
	e.put(alice, "x/keep", keep)
	if err := e.s.Delete(e.ctx, alice, "x/y/z"); err != nil {
		e.t.Fatalf("Delete = %v", err)
	}
	e.wantNoFile(alice, "x/y/z")
	e.wantFile(alice, "x/keep", keep)
	e.wantErr("second Delete", e.s.Delete(e.ctx, alice, "x/y/z"), service.ErrNotFound)
	e.wantErr("Delete of a name never used", e.s.Delete(e.ctx, alice, "never"), service.ErrNotFound)
	e.wantErr("Delete of another owner's file", e.s.Delete(e.ctx, bob, "x/keep"), service.ErrNotFound)
	e.wantFile(alice, "x/keep", keep)
	again := data(30, 3)
	e.put(alice, "x/y/z", again)
	e.wantFile(alice, "x/y/z", again)
	for _, name := range []string{"x/y/z", "x/keep"} {
		if err := e.s.Delete(e.ctx, alice, name); err != nil {
			e.t.Fatalf("Delete(%q) = %v", name, err)
		}
	}
	if got := e.names(alice, ""); len(got) != 0 {
		e.t.Fatalf("List after deleting everything = %q, want nothing", got)
	}
	e.put(alice, "x/y", data(5, 4)) // what were folders can be names now
}

// notFound asks for names that are not files: missing ones, another
// owner's, and the name of a folder, or its prefix.
func notFound(e *env) {
	e.put(alice, "dir/file", data(10, 1))
	e.put(bob, "bobs", data(10, 2))
	for _, c := range []struct{ owner, name string }{
		{alice, "missing"}, {alice, "dir"}, {alice, "dir/fil"}, {alice, "bobs"}, {bob, "dir/file"},
	} {
		if _, err := e.s.Stat(e.ctx, c.owner, c.name); !errors.Is(err, service.ErrNotFound) {
			e.t.Errorf("Stat(%q) = %v, want ErrNotFound", c.name, err)
		}
		if f, err := e.s.Open(e.ctx, c.owner, c.name); !errors.Is(err, service.ErrNotFound) {
			if err == nil {
				f.Close()
			}
			e.t.Errorf("Open(%q) = %v, want ErrNotFound", c.name, err)
		}
		if err := e.s.Delete(e.ctx, c.owner, c.name); !errors.Is(err, service.ErrNotFound) {
			e.t.Errorf("Delete(%q) = %v, want ErrNotFound", c.name, err)
		}
	}
	e.wantNoUpload(alice, "never-begun", 0)
}
