package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/greeter/greeter/internal/envflag"
)

func TestReflectionOn(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		mode string
		want bool
	}{
		{"dev by default", nil, nil, "dev", true},
		{"plaintext by default", nil, nil, "plaintext", true},
		{"tls by default", nil, nil, "tls", false},
		{"mtls by default", nil, nil, "mtls-require", false},
		{"tls with --reflection", []string{"--reflection"}, nil, "tls", true},
		{"dev with --reflection=false", []string{"--reflection=false"}, nil, "dev", false},
		{"dev with GREETER_REFLECTION=false", nil, map[string]string{"GREETER_REFLECTION": "false"}, "dev", false},
		{"tls with GREETER_REFLECTION=true", nil, map[string]string{"GREETER_REFLECTION": "true"}, "tls", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cfg serveConfig
			fs := serveFlags(&cfg)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			if err := envflag.Apply(fs, func(k string) string { return c.env[k] }, ""); err != nil {
				t.Fatal(err)
			}
			if got := reflectionOn(fs, cfg.reflection, c.mode); got != c.want {
				t.Fatalf("reflectionOn = %v, want %v", got, c.want)
			}
		})
	}
}

func TestConnectHint(t *testing.T) {
	clone := t.TempDir()
	if err := os.WriteFile(filepath.Join(clone, "go.mod"), []byte("module "+modulePath+"\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(clone, "e2e")
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	onPath := func(string) (string, error) { return "/usr/local/bin/greeter", nil }
	notOnPath := func(string) (string, error) { return "", errors.New("not found") }
	const hint = "greeter --addr 127.0.0.1:5 --state-dir /s hello"
	for _, c := range []struct {
		name     string
		lookPath func(string) (string, error)
		wd       string
		want     string
	}{
		{"on the PATH", onPath, clone, hint},
		{"at the module root", notOnPath, clone, "go run ./cmd/greeter --addr 127.0.0.1:5 --state-dir /s hello"},
		{"below the module root", notOnPath, sub, "go -C " + clone + " run ./cmd/greeter --addr 127.0.0.1:5 --state-dir /s hello"},
		{"in another module", notOnPath, other, hint},
		{"outside any module", notOnPath, "/", hint},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := connectHint(hint, c.lookPath, c.wd); got != c.want {
				t.Fatalf("connectHint = %q, want %q", got, c.want)
			}
		})
	}
}
