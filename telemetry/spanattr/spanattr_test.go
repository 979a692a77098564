package spanattr_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/greeter/greeter/telemetry/spanattr"
)

// TestObjectName checks that object names are bounded to 128 bytes without
// splitting a UTF-8 sequence (O2).
func TestObjectName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "short", in: "photos/cat.jpg", want: "photos/cat.jpg"},
		{name: "empty", in: "", want: ""},
		{name: "exactly 128", in: strings.Repeat("a", 128), want: strings.Repeat("a", 128)},
		{name: "long ASCII", in: strings.Repeat("b", 4096), want: strings.Repeat("b", 128)},
		{name: "rune across the limit", in: strings.Repeat("a", 127) + "é" + "tail", want: strings.Repeat("a", 127)},
		{name: "rune ending at the limit", in: strings.Repeat("a", 126) + "é" + "tail", want: strings.Repeat("a", 126) + "é"},
		{name: "four-byte runes", in: strings.Repeat("😀", 40), want: strings.Repeat("😀", 32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := spanattr.ObjectName(tt.in)
			if kv.Key != spanattr.Object {
				t.Errorf("key: got %q, want %q", kv.Key, spanattr.Object)
			}
			got := kv.Value.AsString()
			if got != tt.want {
				t.Errorf("value: got %q (%d bytes), want %q (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
			if len(got) > spanattr.MaxObjectLen || !utf8.ValidString(got) {
				t.Errorf("value: got %d bytes, valid UTF-8 %v; want at most %d valid bytes", len(got), utf8.ValidString(got), spanattr.MaxObjectLen)
			}
		})
	}
}
