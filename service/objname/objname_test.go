package objname_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/greeter/greeter/service/objname"
)

func TestJoin(t *testing.T) {
	tests := []struct {
		filename, extension, want string
	}{
		{"report", ".pdf", "report.pdf"},
		{"archive", ".tar.gz", "archive.tar.gz"},
		{"README", "", "README"},
		{"docs/report", ".pdf", "docs/report.pdf"},
		{"", ".bashrc", ".bashrc"},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := objname.Join(tt.filename, tt.extension); got != tt.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tt.filename, tt.extension, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", objname.MaxSegmentLen)
	// maxName is exactly MaxLen bytes: 3*(255+1) + 254 + len("/a").
	maxName := strings.Repeat(long+"/", 3) + long[:254] + "/a"
	if len(maxName) != objname.MaxLen {
		t.Fatalf("len(maxName) = %d, want %d", len(maxName), objname.MaxLen)
	}
	tests := []struct {
		name     string
		in       string
		wantRule objname.Rule // "" means accepted
	}{
		{"plain", "report.pdf", ""},
		{"nested", "photos/2024/beach.jpg", ""},
		{"dot file", ".bashrc", ""},
		{"double dot prefix", "..notes", ""},
		{"dots inside", "a..b/c...d", ""},
		{"trailing dot segment", "dir./file", ""},
		{"space", "my file.txt", ""},
		{"nfc accent", "caf\u00e9.txt", ""},
		{"cjk", "\u6587\u4ef6/\u62a5\u544a.pdf", ""},
		{"emoji", "\U0001F600.png", ""},
		{"segment at limit", long, ""},
		{"name at limit", maxName, ""},
		{"fullwidth solidus is a plain char", "a\uff0fb", ""},
		{"one dot leader is a plain char", "\u2024\u2024", ""},

		{"empty", "", objname.RuleEmpty},
		{"name too long", maxName + "a", objname.RuleTooLong},
		{"segment too long", long + "a", objname.RuleSegmentLong},
		{"nested segment too long", "dir/" + long + "a", objname.RuleSegmentLong},
		{"invalid utf8", "a\xffb", objname.RuleUTF8},
		{"surrogate half", "a\xed\xa0\x80", objname.RuleUTF8},
		{"overlong slash", "a\xc0\xafb", objname.RuleUTF8},
		{"nfd accent", "cafe\u0301.txt", objname.RuleNFC},
		{"nfd hangul", "\u1100\u1161", objname.RuleNFC},
		{"leading slash", "/etc/passwd", objname.RuleAbsolute},
		{"dotdot", "..", objname.RuleSegment},
		{"dot", ".", objname.RuleSegment},
		{"traversal", "../../etc/passwd", objname.RuleSegment},
		{"inner traversal", "a/../../b", objname.RuleSegment},
		{"dot segment", "./a", objname.RuleSegment},
		{"inner dot segment", "a/./b", objname.RuleSegment},
		{"trailing slash", "a/", objname.RuleSegment},
		{"double slash", "a//b", objname.RuleSegment},
		{"only slash", "/", objname.RuleAbsolute},
		{"backslash", `..\..\x`, objname.RuleBackslash},
		{"windows path", `C:\x`, objname.RuleBackslash},
		{"unc path", `\\srv\share`, objname.RuleBackslash},
		{"nul", "a\x00.txt", objname.RuleControl},
		{"newline", "a\nb", objname.RuleControl},
		{"carriage return", "a\rb", objname.RuleControl},
		{"tab", "a\tb", objname.RuleControl},
		{"escape", "a\x1b[31m", objname.RuleControl},
		{"del", "a\x7f", objname.RuleControl},
		{"c1 nel", "a\u0085b", objname.RuleControl},
		{"c1 csi", "a\u009bb", objname.RuleControl},
		{"line separator", "a\u2028b", objname.RuleControl},
		{"paragraph separator", "a\u2029b", objname.RuleControl},
		{"rlo spoof", "invoice\u202efdp.exe", objname.RuleFormat},
		{"zero width space", "a\u200bb", objname.RuleFormat},
		{"zero width joiner", "a\u200db", objname.RuleFormat},
		{"lrm", "a\u200eb", objname.RuleFormat},
		{"rlm", "a\u200fb", objname.RuleFormat},
		{"lri", "a\u2066b", objname.RuleFormat},
		{"pdi", "a\u2069b", objname.RuleFormat},
		{"bom", "\ufeffa", objname.RuleFormat},
		{"soft hyphen", "a\u00adb", objname.RuleFormat},
		{"tag character", "a\U000E0041", objname.RuleFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := objname.Validate(tt.in)
			if got := ruleOf(t, err); got != tt.wantRule {
				t.Fatalf("Validate(%q) = %v (rule %q), want rule %q", tt.in, err, got, tt.wantRule)
			}
		})
	}
}

func TestValidateMessages(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"a/../b", `name segment ".." is not allowed`},
		{"a\xff", "name must be valid UTF-8"},
		{"abc\x07", "name contains a control character (U+0007) at byte 3"},
		{"x\u202e", "name contains an invisible formatting character (U+202E) at byte 1"},
		{"", "name must not be empty"},
		{"e\u0301", "name must be in Unicode Normalization Form C"},
	}
	for _, tt := range tests {
		err := objname.Validate(tt.in)
		if err == nil {
			t.Errorf("Validate(%q) = nil, want %q", tt.in, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("Validate(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestQuote checks that Quote shows at most QuoteLen bytes of its input,
// cut at a rune boundary, and the input's length (RELIABILITY.md R4).
func TestQuote(t *testing.T) {
	at := strings.Repeat("a", objname.QuoteLen)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", `""`},
		{"short", "a\nb", `"a\nb"`},
		{"at the limit", at, `"` + at + `"`},
		{"one over", at + "b", `"` + at + `"…(65 bytes)`},
		{"rune ending at the cut", at[:62] + "é" + "z", `"` + at[:62] + `é"…(65 bytes)`},
		{"rune across the cut", at[:63] + "é", `"` + at[:63] + `"…(65 bytes)`},
		{"four-byte rune across the cut", at[:61] + "\U0001F600" + "z", `"` + at[:61] + `"…(66 bytes)`},
		{"invalid utf8", strings.Repeat("\xff", 70), `"` + strings.Repeat(`\xff`, 64) + `"…(70 bytes)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := objname.Quote(tt.in); got != tt.want {
				t.Errorf("Quote(%.80q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
	huge := objname.Quote(strings.Repeat("\x01", 1<<20))
	if want := `"` + strings.Repeat(`\x01`, objname.QuoteLen) + `"…(1048576 bytes)`; huge != want {
		t.Errorf("Quote of 1 MiB of control bytes = %.100s… (%d bytes), want %s", huge, len(huge), want)
	}
}

func TestValidatePrefix(t *testing.T) {
	long := strings.Repeat("b", objname.MaxSegmentLen)
	tests := []struct {
		name     string
		in       string
		wantRule objname.Rule
	}{
		{"empty", "", ""},
		{"partial segment", "rep", ""},
		{"directory", "photos/", ""},
		{"nested partial", "photos/20", ""},
		{"partial dot", "a/.", ""},
		{"partial dotdot", "..", ""},
		{"partial segment at limit", long, ""},

		{"leading slash", "/a", objname.RuleAbsolute},
		{"dotdot segment", "../", objname.RuleSegment},
		{"dotdot inside", "a/../b", objname.RuleSegment},
		{"dot segment", "./a", objname.RuleSegment},
		{"double slash", "a//", objname.RuleSegment},
		{"too long", strings.Repeat("a/", objname.MaxLen/2) + "a", objname.RuleTooLong},
		{"segment too long", long + "b/", objname.RuleSegmentLong},
		{"partial too long", long + "b", objname.RuleSegmentLong},
		{"nul", "a\x00", objname.RuleControl},
		{"backslash", `a\`, objname.RuleBackslash},
		{"bidi", "\u202e", objname.RuleFormat},
		{"invalid utf8", "\xc3", objname.RuleUTF8},
		{"nfd", "e\u0301", objname.RuleNFC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := objname.ValidatePrefix(tt.in)
			if got := ruleOf(t, err); got != tt.wantRule {
				t.Fatalf("ValidatePrefix(%q) = %v (rule %q), want rule %q", tt.in, err, got, tt.wantRule)
			}
		})
	}
}

// ruleOf returns the rule of err, "" for nil, and fails the test if err is
// not an *objname.Error.
func ruleOf(t *testing.T, err error) objname.Rule {
	t.Helper()
	if err == nil {
		return ""
	}
	var e *objname.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *objname.Error", err, err)
	}
	if e.Reason == "" || e.Error() != e.Reason {
		t.Fatalf("error %#v: Error() = %q, want non-empty Reason", e, e.Error())
	}
	return e.Rule
}

func FuzzValidate(f *testing.F) {
	for _, seed := range []string{
		"report.pdf", "photos/2024/beach.jpg", ".bashrc", "..notes", "a..b",
		"", ".", "..", "../x", "a/../../b", "/etc/passwd", "a//b", "a/", "./a",
		`..\..\x`, `C:\x`, "a\x00.txt", "a\nb", "a\u0085", "a\x7f",
		"cafe\u0301", "caf\u00e9", "invoice\u202efdp.exe", "a\u200bb", "\ufeff",
		"a\xffb", "\xed\xa0\x80", "\u2024\u2024/\uff0f", "\U0001F600",
		strings.Repeat("a", 256), strings.Repeat("a/", 600),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if objname.Validate(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > objname.MaxLen {
			t.Fatalf("accepted %q of length %d", name, len(name))
		}
		if !norm.NFC.IsNormalString(name) {
			t.Fatalf("accepted non-NFC name %q", name)
		}
		if strings.ContainsRune(name, '\\') || (filepath.Separator != '/' && strings.ContainsRune(name, filepath.Separator)) {
			t.Fatalf("accepted %q with a separator other than '/'", name)
		}
		if !utf8.ValidString(name) {
			t.Fatalf("accepted invalid UTF-8 %q", name)
		}
		for i, r := range name {
			if r == 0 || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("accepted %q with forbidden rune %U at byte %d", name, r, i)
			}
		}
		for _, seg := range strings.Split(name, "/") {
			if !filepath.IsLocal(seg) || seg == "." || len(seg) > objname.MaxSegmentLen {
				t.Fatalf("accepted %q with bad segment %q", name, seg)
			}
		}
		if err := objname.ValidatePrefix(name); err != nil {
			t.Fatalf("Validate accepted %q but ValidatePrefix rejected it: %v", name, err)
		}
		createInRoot(t, name)
	})
}

// createInRoot creates name under an os.Root opened on a fresh directory and
// checks that the file landed exactly there and nothing else was created
// beside the root.
func createInRoot(t *testing.T, name string) {
	t.Helper()
	outer := t.TempDir()
	dir := filepath.Join(outer, "root")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if parent := filepath.Dir(name); parent != "." {
		if err := root.MkdirAll(parent, 0o750); err != nil {
			t.Fatalf("MkdirAll(%q) for accepted name: %v", parent, err)
		}
	}
	f, err := root.Create(name)
	if err != nil {
		t.Fatalf("Create(%q) for accepted name: %v", name, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("accepted %q: file not found at the expected place inside the root (err %v)", name, err)
	}
	var files int
	err = filepath.WalkDir(outer, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != outer && p != dir && !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Errorf("accepted %q: %q was created outside the root", name, p)
		}
		if d.Type().IsRegular() {
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != 1 {
		t.Fatalf("accepted %q: got %d files under the temp dir, want 1", name, files)
	}
}
