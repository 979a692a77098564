package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greeter/greeter/service"
)

// TestQuotaConfig checks the quota flags and --quota-file (RELIABILITY.md
// R11): defaults, per-owner overrides that fill in what they leave out, and
// usage errors that say what is wrong.
func TestQuotaConfig(t *testing.T) {
	const alice, svc = "jwt:https://idp.example.com:alice", "x509-uri:spiffe://greeter.local/svc/backup"
	tests := []struct {
		name    string
		args    []string
		file    string // content of --quota-file, if not empty
		want    map[string]service.Quota
		wantErr string
	}{
		{
			name: "defaults",
			want: map[string]service.Quota{alice: {Bytes: 10 << 30, Objects: 100_000}},
		},
		{
			name: "flags",
			args: []string{"--quota-bytes", "1MiB", "--quota-objects", "0"},
			want: map[string]service.Quota{alice: {Bytes: 1 << 20}},
		},
		{
			name: "overrides",
			args: []string{"--quota-bytes", "1MiB", "--quota-objects", "10"},
			file: `{"owners": {"` + alice + `": {"bytes": "2GiB"}, "` + svc + `": {"bytes": 0, "objects": 5}}}`,
			want: map[string]service.Quota{
				alice:         {Bytes: 2 << 30, Objects: 10},
				svc:           {Objects: 5},
				"jwt:idp:bob": {Bytes: 1 << 20, Objects: 10},
			},
		},
		{name: "negative objects flag", args: []string{"--quota-objects", "-1"}, wantErr: "--quota-objects must not be negative"},
		{name: "unknown field", file: `{"owners": {"a": {"byte": 1}}}`, wantErr: `unknown field "byte"`},
		{name: "bad size", file: `{"owners": {"a": {"bytes": "lots"}}}`, wantErr: `invalid size "lots"`},
		{name: "negative objects", file: `{"owners": {"a": {"objects": -2}}}`, wantErr: `owner "a": objects must not be negative`},
		{name: "empty owner", file: `{"owners": {"": {}}}`, wantErr: "owner keys must be 1 to"},
		{name: "trailing data", file: `{"owners": {}} {}`, wantErr: "data after the JSON object"},
		{name: "not JSON", file: `alice 1GiB 10`, wantErr: "--quota-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c serveConfig
			args := tt.args
			if tt.file != "" {
				path := filepath.Join(t.TempDir(), "quotas.json")
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--quota-file", path)
			}
			if err := serveFlags(&c).Parse(args); err != nil {
				t.Fatal(err)
			}
			table, err := c.quota.load()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, new(usageError)) {
					t.Fatalf("load = %v, want a usage error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for owner, want := range tt.want {
				if got := table.For(owner); got != want {
					t.Errorf("For(%q) = %+v, want %+v", owner, got, want)
				}
			}
		})
	}
}

func TestQuotaFileMissing(t *testing.T) {
	var c serveConfig
	if err := serveFlags(&c).Parse([]string{"--quota-file", filepath.Join(t.TempDir(), "none.json")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.quota.load(); err == nil || !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "none.json") {
		t.Fatalf("load of a missing --quota-file = %v, want a usage error naming it", err)
	}
}
