package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// minioModule is what go install fetches for the MinIO baseline. MinIO is
// AGPL: it runs as a separate server and is never linked into greeter.
const minioModule = "github.com/minio/minio@latest"

// ensureTools installs what the selected baselines need and is missing:
// openssh-server, openssh-client, rsync and curl with apt-get, MinIO with
// go install into the cache directory unless the tests' MinIO is there.
func (h *harness) ensureTools(ctx context.Context, ssh, rsync, minio bool) error {
	var pkgs []string
	if ssh {
		if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
			pkgs = append(pkgs, "openssh-server")
		}
		if !onPath("scp") || !onPath("ssh-keygen") {
			pkgs = append(pkgs, "openssh-client")
		}
	}
	if rsync && !onPath("rsync") {
		pkgs = append(pkgs, "rsync")
	}
	if minio && !onPath("curl") {
		pkgs = append(pkgs, "curl")
	}
	if len(pkgs) > 0 {
		if err := aptInstall(ctx, pkgs); err != nil {
			return err
		}
	}
	if minio {
		out, err := exec.CommandContext(ctx, "curl", "--help", "all").Output()
		if err != nil || !strings.Contains(string(out), "--aws-sigv4") {
			return errors.New("curl has no --aws-sigv4 (needs curl ≥ 7.75)")
		}
		h.minio = h.minioBinary()
		if _, err := os.Stat(h.minio); err != nil {
			h.logf("installing MinIO into %s (one time, about 2.5 minutes)", filepath.Dir(h.minio))
			start := time.Now()
			cmd := exec.CommandContext(ctx, "go", "install", minioModule)
			cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(h.minio))
			cmd.Dir = os.TempDir() // outside this module: MinIO's own go.mod decides its dependencies
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go install %s: %w\n%s", minioModule, err, out)
			}
			h.logf("installed MinIO in %s", time.Since(start).Round(time.Second))
		}
	}
	return nil
}

// minioBinary is the MinIO server to run: the one the tests use when there
// is one ($GREETER_MINIO, then the module's .bin/minio, see
// internal/s3test), else the one in the cache directory, installed there
// if missing.
func (h *harness) minioBinary() string {
	for _, bin := range []string{os.Getenv("GREETER_MINIO"), filepath.Join(h.root, ".bin", "minio")} {
		if st, err := os.Stat(bin); bin != "" && err == nil && st.Mode().IsRegular() {
			return bin
		}
	}
	return filepath.Join(h.opts.cacheDir, "bin", "minio")
}

func onPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// aptInstall installs Debian packages, updating the package lists first (a
// fresh machine or container has none).
func aptInstall(ctx context.Context, pkgs []string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing %s: run sudo apt-get update && sudo apt-get install -y %s", strings.Join(pkgs, ", "), strings.Join(pkgs, " "))
	}
	if out, err := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %w\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// build compiles greeterd and greeter from this module into h.bin.
func (h *harness) build(ctx context.Context) error {
	args := []string{"build", "-trimpath", "-o", h.bin + string(filepath.Separator)}
	if h.prof != nil {
		overlay, err := h.writeOverlay()
		if err != nil {
			return err
		}
		args = append(args, "-overlay", overlay)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/greeterd", "./cmd/greeter")...)
	cmd.Dir = h.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building greeterd and greeter: %w\n%s", err, out)
	}
	return nil
}

// moduleRoot returns the directory of this module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run compare inside the greeter module (go run ./bench/compare)")
	}
	return filepath.Dir(mod), nil
}
