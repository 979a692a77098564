package diskstore

import (
	"crypto/sha256"
	"slices"
	"testing"
)

func TestList(t *testing.T) {
	s, _ := newStore(t)
	names := []string{
		"a b", "a-b", "a.txt", "a/b", "a/c/d", "a0",
		"photos/2023/x.jpg", "photos/2024/beach.jpg", "photos/2024/city.jpg", "photos-old",
		"z", "\u00e9t\u00e9",
	}
	for _, n := range names {
		put(t, s, owner, n, []byte(n))
	}
	put(t, s, "bob", "a/bob", []byte("not alice's"))
	sorted := slices.Clone(names)
	slices.Sort(sorted) // byte order

	// Page through everything two at a time.
	for _, limit := range []int{1, 2, 5, 100} {
		var got []string
		after := ""
		for range len(names) + 1 {
			page, err := s.List(t.Context(), owner, "", after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("List(limit %d) returned %d entries", limit, len(page))
			}
			for _, fi := range page {
				got = append(got, fi.Name)
			}
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].Name
		}
		if !slices.Equal(got, sorted) {
			t.Errorf("paging with limit %d = %q, want %q", limit, got, sorted)
		}
	}

	tests := []struct {
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
		{"", "photos/2024/city.jpg", 10, []string{"z", "\u00e9t\u00e9"}},
		{"photos", "", 2, []string{"photos-old", "photos/2023/x.jpg"}},
		{"nothing/", "", 10, nil},
		{"z/", "", 10, nil},
		{"", "", 0, nil},
		{"", "\u00e9t\u00e9", 10, nil},
	}
	for _, tt := range tests {
		page, err := s.List(t.Context(), owner, tt.prefix, tt.after, tt.limit)
		if err != nil {
			t.Errorf("List(%q, %q, %d) = %v", tt.prefix, tt.after, tt.limit, err)
			continue
		}
		var got []string
		for _, fi := range page {
			got = append(got, fi.Name)
			if fi.Size != int64(len(fi.Name)) || fi.SHA256 != sha256.Sum256([]byte(fi.Name)) || fi.Modified.IsZero() {
				t.Errorf("List entry %+v: wrong size, digest or time", fi)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("List(%q, %q, %d) = %q, want %q", tt.prefix, tt.after, tt.limit, got, tt.want)
		}
	}
}
