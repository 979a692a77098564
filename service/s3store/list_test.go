package s3store

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/greeter/greeter/service"
)

func TestListPaging(t *testing.T) {
	s := openStore(t, nil)
	// Byte order, not the order of a folder walk: "a-b" < "a/b" < "a0".
	names := []string{"a/b", "a-b", "a0", "b0", "b/c/d", "b/c/e", "é", "z", "A", "a/c/d/e"}
	for i := range 12 {
		names = append(names, "many/"+string(rune('a'+i)))
	}
	for i, n := range names {
		put(t, s, n, data(i, byte(i)))
	}
	// Another owner's files never show.
	if _, err := s.Create(testCtx(t), "someone else", "a0"); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(names)
	slices.Sort(want)

	for _, tt := range []struct {
		prefix string
		limit  int
	}{{"", 1}, {"", 4}, {"", 100}, {"many/", 5}, {"a", 3}, {"b/c/", 1}} {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > len(names) {
				t.Fatalf("prefix %q limit %d: paging does not end", tt.prefix, tt.limit)
			}
			page, err := s.List(testCtx(t), owner, tt.prefix, after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > tt.limit {
				t.Fatalf("page of %d, limit %d", len(page), tt.limit)
			}
			for _, fi := range page {
				got = append(got, fi.Name)
				i := slices.Index(names, fi.Name)
				if fi.Size != int64(i) || fi.SHA256 != sha256.Sum256(data(i, byte(i))) {
					t.Errorf("%q: size %d sha %x, want %d bytes of data %d", fi.Name, fi.Size, fi.SHA256, i, i)
				}
			}
			if len(page) < tt.limit {
				break
			}
			after = page[len(page)-1].Name
		}
		var wantHere []string
		for _, n := range want {
			if strings.HasPrefix(n, tt.prefix) {
				wantHere = append(wantHere, n)
			}
		}
		if !slices.Equal(got, wantHere) {
			t.Errorf("prefix %q limit %d: listed\n%q\nwant\n%q", tt.prefix, tt.limit, got, wantHere)
		}
	}
	if page, err := s.List(testCtx(t), owner, "", "", 0); err != nil || len(page) != 0 {
		t.Errorf("List with limit 0 = %v, %v", page, err)
	}
	if _, err := s.List(testCtx(t), owner, "/abs", "", 1); err == nil {
		t.Error("List with a bad prefix succeeded")
	}
}

func TestDeleteAsDiskStore(t *testing.T) {
	s := openStore(t, nil)
	ctx := testCtx(t)
	put(t, s, "dir/f", data(10, 1))
	if err := s.Delete(ctx, owner, "dir/f"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, owner, "dir/f"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Stat after Delete = %v, want ErrNotFound", err)
	}
	// A second delete finds nothing, as on the disk store.
	if err := s.Delete(ctx, owner, "dir/f"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, owner, "dir"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Delete of a folder = %v, want ErrNotFound", err)
	}
}
