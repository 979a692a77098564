package diskstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greeter/greeter/service"
)

func TestResumableBadState(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	data := randomData(t, 100)
	key := filepath.Join(dir, uploadsDir, encodedOwner(owner))
	for _, c := range []struct {
		name    string
		corrupt func(id string)
	}{
		{"garbage state", func(id string) { os.WriteFile(filepath.Join(key, id+stateSuffix), []byte("{"), 0o600) }},
		{"part missing", func(id string) { os.Remove(filepath.Join(key, id+partSuffix)) }},
		{"part short", func(id string) { os.Truncate(filepath.Join(key, id+partSuffix), 10) }},
		{"committed beyond size", func(id string) {
			p := filepath.Join(key, id+stateSuffix)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"committed":50`), []byte(`"committed":500`), 1), 0o600)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := strings.ReplaceAll(c.name, " ", "-")
			up, err := s.BeginResumable(ctx, owner, resumeOf(id, "f", data, 0))
			if err != nil {
				t.Fatal(err)
			}
			writeAll(t, up, data[:50], 50)
			up.Suspend()
			c.corrupt(id)
			wantUnknown(t, s, owner, id, 0)
			if _, err := s.BeginResumable(ctx, owner, resumeOf(id, "f", data, 50)); !errors.Is(err, service.ErrOffsetMismatch) {
				t.Fatalf("resuming an unusable upload = %v, want ErrOffsetMismatch", err)
			}
			up, err = s.BeginResumable(ctx, owner, resumeOf(id, "f", data, 0))
			if err != nil {
				t.Fatal(err)
			}
			writeAll(t, up, data, 30)
			if _, err := up.Commit(ctx, service.Expect{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
