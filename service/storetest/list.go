package storetest

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strings"

	"github.com/greeter/greeter/service"
)

// listBehaviours are those of names: listing, owners and folders.
var listBehaviours = []behaviour{
	{name: "ListPaging", run: listPaging},
	{name: "OwnersAreSeparate", run: ownersAreSeparate},
	{name: "Folders", run: folders},
	{name: "InvalidOwner", run: invalidOwner},
}

// listNames are names whose byte order differs from the order of a walk
// that visits folders before the files beside them ("a-b" < "a/b" < "a0").
// None is a folder of another, so they hold on stores with or without
// folders.
var listNames = []string{
	"a b", "a-b", "a.txt", "a/b", "a/c/d", "a0",
	"photos/2023/x.jpg", "photos/2024/beach.jpg", "photos/2024/city.jpg", "photos-old",
	"z", "\u00e9t\u00e9", "\u6587\u4ef6/\u00e9.pdf",
}

// listPaging lists with prefixes, after and limits: names come in byte
// order, pages follow each other without loss or repetition, and neither
// another owner's files nor incomplete uploads show.
func listPaging(e *env) {
	for _, n := range listNames {
		e.put(alice, n, []byte(n))
	}
	e.put(bob, "a/bob", []byte("not alice's"))
	up := e.begin(alice, resume("pending", "a/pending", data(100, 1), 0))
	if err := write(up, data(100, 1)[:50]); err != nil {
		e.t.Fatal(err)
	}
	defer up.Abort()
	pending, err := e.s.Create(e.ctx, alice, "a/plain-pending")
	if err != nil {
		e.t.Fatal(err)
	}
	defer pending.Abort()

	sorted := slices.Clone(listNames)
	slices.Sort(sorted) // byte order
	for _, limit := range []int{1, 2, 5, 100} {
		var got []string
		after := ""
		for range len(listNames) + 1 {
			page, err := e.s.List(e.ctx, alice, "", after, limit)
			if err != nil {
				e.t.Fatalf("List(after %q, limit %d) = %v", after, limit, err)
			}
			if len(page) > limit {
				e.t.Fatalf("List(limit %d) returned %d entries", limit, len(page))
			}
			for _, fi := range page {
				got = append(got, fi.Name)
				if fi.Size != int64(len(fi.Name)) || fi.SHA256 != sha256.Sum256([]byte(fi.Name)) || fi.Modified.IsZero() {
					e.t.Fatalf("List entry %+v: want size %d, the sha256 of its bytes and a time", fi, len(fi.Name))
				}
			}
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].Name
		}
		if !slices.Equal(got, sorted) {
			e.t.Fatalf("paging with limit %d = %q, want %q", limit, got, sorted)
		}
	}

	for _, c := range []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"a/", "", 10, []string{"a/b", "a/c/d"}},
		{"a", "", 3, []string{"a b", "a-b", "a.txt"}},
		{"a", "a.txt", 10, []string{"a/b", "a/c/d", "a0"}},
		{"a/c", "", 10, []string{"a/c/d"}},
		{"photos/20", "", 10, []string{"photos/2023/x.jpg", "photos/2024/beach.jpg", "photos/2024/city.jpg"}},
		{"photos/2024/", "photos/2024/beach.jpg", 10, []string{"photos/2024/city.jpg"}},
		{"photos", "photos/2023/x.jpg", 2, []string{"photos/2024/beach.jpg", "photos/2024/city.jpg"}},
		{"photos/", "photos/2023", 1, []string{"photos/2023/x.jpg"}},
		{"photos", "", 2, []string{"photos-old", "photos/2023/x.jpg"}},
		{"", "photos/2024/city.jpg", 10, []string{"z", "\u00e9t\u00e9", "\u6587\u4ef6/\u00e9.pdf"}},
		{"", "a/b/zzz", 2, []string{"a/c/d", "a0"}}, // after need not be a name
		{"\u6587", "", 10, []string{"\u6587\u4ef6/\u00e9.pdf"}},
		{"nothing/", "", 10, nil},
		{"z/", "", 10, nil},
		{"", "", 0, nil},
		{"", "\u6587\u4ef6/\u00e9.pdf", 10, nil},
	} {
		page, err := e.s.List(e.ctx, alice, c.prefix, c.after, c.limit)
		if err != nil {
			e.t.Fatalf("List(%q, after %q, limit %d) = %v", c.prefix, c.after, c.limit, err)
		}
		var got []string
		for _, fi := range page {
			got = append(got, fi.Name)
		}
		if !slices.Equal(got, c.want) {
			e.t.Fatalf("List(%q, after %q, limit %d) = %q, want %q", c.prefix, c.after, c.limit, got, c.want)
		}
	}
	if got := e.names(bob, ""); !slices.Equal(got, []string{"a/bob"}) {
		e.t.Fatalf("bob's List = %q, want only his file", got)
	}
}

// ownersAreSeparate uses one name and one upload id for two owners: each
// sees only its own.
func ownersAreSeparate(e *env) {
	mine, theirs := data(100, 1), data(200, 2)
	e.put(alice, "same", mine)
	e.put(bob, "same", theirs)
	e.wantFile(alice, "same", mine)
	e.wantFile(bob, "same", theirs)
	if err := e.s.Delete(e.ctx, bob, "same"); err != nil {
		e.t.Fatal(err)
	}
	e.wantFile(alice, "same", mine)
	e.wantNoFile(bob, "same")

	b := data(3*e.block(), 3)
	kept := e.suspended(alice, "id", "up", b, e.block()+1)
	e.wantNoUpload(bob, "id", 0)
	// bob's upload of the same id is a new one of his own.
	up := e.begin(bob, resume("id", "other", data(10, 4), 0))
	if err := up.Abort(); err != nil {
		e.t.Fatal(err)
	}
	e.wantCommitted(alice, "id", 0, kept)
}

// folders states whether a file can stand where another file's name needs
// a folder (Harness.Folders).
func folders(e *env) {
	file, inner := data(10, 1), data(20, 2)
	e.put(alice, "file", file)
	e.put(alice, "folder/inner", inner)
	below, folder := data(30, 3), data(40, 4)
	_, errBelow := e.tryPut(alice, "file/below", below, expect(below))
	_, errFolder := e.tryPut(alice, "folder", folder, expect(folder))
	if e.h.Folders {
		e.wantErr(`upload of "file/below" where "file" is a file`, errBelow, service.ErrConflict)
		e.wantErr(`upload of "folder" where "folder/inner" is a file`, errFolder, service.ErrConflict)
		r := resume("r", "file/deeper/below", below, 0)
		if up, err := e.s.BeginResumable(e.ctx, alice, r); err == nil {
			err = write(up, below)
			if err == nil {
				_, err = up.Commit(e.ctx, service.Expect{})
			}
			up.Abort()
			e.wantErr(`resumable upload of "file/deeper/below"`, err, service.ErrConflict)
		} else {
			e.wantErr(`BeginResumable of "file/deeper/below"`, err, service.ErrConflict)
		}
		e.wantNoFile(alice, "file/below")
		e.wantNoFile(alice, "file/deeper/below")
		e.wantNoFile(alice, "folder")
		if got, want := e.names(alice, ""), []string{"file", "folder/inner"}; !slices.Equal(got, want) {
			e.t.Fatalf("List = %q, want %q", got, want)
		}
	} else {
		if errBelow != nil || errFolder != nil {
			e.t.Fatalf("uploads of a file's name as a folder and of a folder's name = %v, %v; want both to succeed (Harness.Folders is false)", errBelow, errFolder)
		}
		e.wantFile(alice, "file/below", below)
		e.wantFile(alice, "folder", folder)
		if got, want := e.names(alice, ""), []string{"file", "file/below", "folder", "folder/inner"}; !slices.Equal(got, want) {
			e.t.Fatalf("List = %q, want %q", got, want)
		}
	}
	e.wantFile(alice, "file", file)
	e.wantFile(alice, "folder/inner", inner)
}

// invalidOwner passes an empty owner, and one longer than
// Harness.MaxOwnerLen, to every method: each fails with ErrInvalidOwner.
// The longest accepted owner works.
func invalidOwner(e *env) {
	bad := []string{""}
	if n := e.h.MaxOwnerLen; n > 0 {
		bad = append(bad, strings.Repeat("o", n+1))
		longest := strings.Repeat("o", n)
		b := data(10, 1)
		e.put(longest, "f", b)
		e.wantFile(longest, "f", b)
	}
	b := data(10, 2)
	for _, owner := range bad {
		check := func(op string, err error) {
			e.t.Helper()
			if !errors.Is(err, service.ErrInvalidOwner) {
				e.t.Errorf("%s with an owner of %d bytes = %v, want ErrInvalidOwner", op, len(owner), err)
			}
		}
		u, err := e.s.Create(e.ctx, owner, "f")
		if err == nil {
			u.Abort()
		}
		check("Create", err)
		f, err := e.s.Open(e.ctx, owner, "f")
		if err == nil {
			f.Close()
		}
		check("Open", err)
		_, err = e.s.Stat(e.ctx, owner, "f")
		check("Stat", err)
		_, err = e.s.List(e.ctx, owner, "", "", 10)
		check("List", err)
		check("Delete", e.s.Delete(e.ctx, owner, "f"))
		up, err := e.s.BeginResumable(e.ctx, owner, resume("id", "f", b, 0))
		if err == nil {
			up.Abort()
		}
		check("BeginResumable", err)
		_, err = e.s.QueryResumable(e.ctx, owner, "id", 0)
		check("QueryResumable", err)
		_, err = e.s.Usage(e.ctx, owner)
		check("Usage", err)
	}
}
