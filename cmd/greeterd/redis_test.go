package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greeter/greeter/internal/redistest"
)

func TestRedisURL(t *testing.T) {
	tests := []struct {
		url, envPassword string
		wantAddr         string
		wantDB           int
		wantPassword     string
		wantTLS          bool
		wantErr          string
	}{
		{url: "redis://10.0.0.5:6380/2", wantAddr: "10.0.0.5:6380", wantDB: 2},
		{url: "redis://10.0.0.5", wantAddr: "10.0.0.5:6379"},
		{url: "rediss://redis.internal:6380/0", wantAddr: "redis.internal:6380", wantTLS: true},
		{url: "redis://:from-url@h:1/0", envPassword: "from-env", wantAddr: "h:1", wantPassword: "from-url"},
		{url: "redis://h:1/0", envPassword: "from-env", wantAddr: "h:1", wantPassword: "from-env"},
		{url: "http://h:1/0", wantErr: "must start with redis:// or rediss://"},
		{url: "redis://h:1/zero", wantErr: "invalid database number"},
		{url: "redis://:hunter2@h:port/0", wantErr: "not a URL"},
	}
	for _, tc := range tests {
		c := redisConfig{url: tc.url}
		o, err := c.options(func(k string) string {
			if k == redisPasswordEnv {
				return tc.envPassword
			}
			return ""
		})
		if tc.wantErr != "" {
			if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %v, want a usage error containing %q", tc.url, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: the error shows the password: %v", tc.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if o.Addr != tc.wantAddr || o.DB != tc.wantDB || o.Password != tc.wantPassword || (o.TLSConfig != nil) != tc.wantTLS {
			t.Errorf("%s: got addr %s db %d password %q tls %v, want %s %d %q %v",
				tc.url, o.Addr, o.DB, o.Password, o.TLSConfig != nil, tc.wantAddr, tc.wantDB, tc.wantPassword, tc.wantTLS)
		}
		if !o.ContextTimeoutEnabled || o.MaxRetries != -1 {
			t.Errorf("%s: options not tuned for limits (ContextTimeoutEnabled %v, MaxRetries %d)", tc.url, o.ContextTimeoutEnabled, o.MaxRetries)
		}
	}
	if o, err := (&redisConfig{}).options(func(string) string { return "x" }); o != nil || err != nil {
		t.Errorf("no --redis-url: got %v, %v, want nil, nil", o, err)
	}
}

// runWithEnv runs greeterd serve (starting and stopping at once) with args
// and the environment env, and returns its exit code and log.
func runWithEnv(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dir := t.TempDir()
	args = append(args, "--plaintext", "--listen", "127.0.0.1:0", "--state-dir", dir, "--data-dir", filepath.Join(dir, "data"))
	var stderr bytes.Buffer
	code := run(ctx, args, new(bytes.Buffer), &stderr, func(k string) string { return env[k] })
	return code, stderr.String()
}

func TestServeWithRedis(t *testing.T) {
	const password = "s3cret-pw"
	srv := redistest.Start(t, "--requirepass", password)
	addr := srv.Addr()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"password in the URL", nil, []string{"--redis-url", "redis://:" + password + "@" + addr + "/0"}, "per-identity limits shared through redis"},
		{"password from the environment", map[string]string{redisPasswordEnv: password}, []string{"--redis-url", "redis://" + addr + "/0"}, "per-identity limits shared through redis"},
		{"URL from the environment", map[string]string{"GREETER_REDIS_URL": "redis://" + addr + "/0", redisPasswordEnv: password}, nil, "per-identity limits shared through redis"},
		{"wrong password: serves, limits local", map[string]string{redisPasswordEnv: "wrong"}, []string{"--redis-url", "redis://" + addr + "/0"}, "redis unreachable"},
		{"no redis at all: serves, limits local", nil, []string{"--redis-url", "redis://127.0.0.1:1/0"}, "redis unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, log := runWithEnv(t, tc.env, tc.args...)
			if code != 0 || !strings.Contains(log, tc.want) || !strings.Contains(log, "greeterd listening") {
				t.Errorf("exit %d, log:\n%s\nwant 0, %q and serving", code, log, tc.want)
			}
			if strings.Contains(log, password) {
				t.Errorf("the log shows the Redis password:\n%s", log)
			}
		})
	}
	if code, log := runWithEnv(t, nil); code != 0 || strings.Contains(log, "through redis") || strings.Contains(log, "redis unreachable") {
		t.Errorf("without --redis-url: exit %d, log:\n%s\nwant 0 and no word of Redis", code, log)
	}
}
