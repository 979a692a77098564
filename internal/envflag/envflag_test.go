package envflag

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestApplyPrecedence(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "greeterd.conf")
	if err := os.WriteFile(cfg, []byte("# comment\nlisten = 127.0.0.1:1\nchunk-size = \"64\"\nlog-format = json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GREETER_CHUNK_SIZE": "128", "GREETER_DATA_DIR": "/env"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	listen := fs.String("listen", "default", "")
	chunk := fs.Int("chunk-size", 1, "")
	dataDir := fs.String("data-dir", "d", "")
	format := fs.String("log-format", "text", "")
	if err := fs.Parse([]string{"-log-format", "text"}); err != nil {
		t.Fatal(err)
	}
	if err := Apply(fs, func(k string) string { return env[k] }, cfg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"file beats default", *listen, "127.0.0.1:1"},
		{"env beats file", strconv.Itoa(*chunk), "128"},
		{"env beats default", *dataDir, "/env"},
		{"command line beats file", *format, "text"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, config string
		env          map[string]string
	}{
		{"unknown setting", "nope = 1\n", nil},
		{"malformed line", "listen\n", nil},
		{"bad env value", "", map[string]string{"GREETER_CHUNK_SIZE": "big"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
				t.Fatal(err)
			}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.String("listen", "", "")
			fs.Int("chunk-size", 1, "")
			if err := fs.Parse(nil); err != nil {
				t.Fatal(err)
			}
			if err := Apply(fs, func(k string) string { return c.env[k] }, path); err == nil {
				t.Fatal("got nil error, want one")
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	if got, want := EnvName("max-file-size"), "GREETER_MAX_FILE_SIZE"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"512", 512, true}, {"64KiB", 64 << 10, true}, {"2mib", 2 << 20, true},
		{"1GiB", 1 << 30, true}, {"1 GB", 1 << 30, true}, {"3k", 3 << 10, true},
		{"", 0, false}, {"-1", 0, false}, {"1.5GiB", 0, false}, {"lots", 0, false}, {"99999999999TiB", 0, false},
	} {
		got, err := ParseSize(c.in)
		if (err == nil) != c.ok || int64(got) != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
	z := Size(2 << 20)
	if got := z.String(); got != "2MiB" {
		t.Errorf("String() = %q, want 2MiB", got)
	}
}
