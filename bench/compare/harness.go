package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// harness owns everything a run creates: directories, binaries and server
// processes. close undoes all of it.
type harness struct {
	opts      options
	root      string // the module
	work      string // keys, configs, state and logs (temp dir)
	files     string // the source file and the downloads
	fileKind  string // what backs files, for the report
	serverDir string // where the servers store files
	serverFS  string
	bin       string       // greeterd and greeter built from root
	minio     string       // the MinIO binary
	minioT    *minioTarget // the MinIO server, once started
	sshT      *scpTarget   // the sshd of the scp, scp-sync and rsync targets, once started
	mode      string       // modePinned or modeShared: where servers and clients run
	otlp      string       // OTLP/HTTP endpoint for greeterd's spans
	source    string       // the file every target moves
	sourceSum string       // its hex SHA-256
	prof      *profiler    // with -cpuprofile
	closers   []func()
	started   time.Time
}

func newHarness(ctx context.Context, o options) (_ *harness, err error) {
	h := &harness{opts: o, started: time.Now()}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	if h.root, err = moduleRoot(ctx); err != nil {
		return nil, err
	}
	needSSH, needMinIO, needRsync := o.sweep, o.sweep, false
	for _, t := range o.targets {
		needSSH = needSSH || t == targetSCP || t == targetSCPSync || t == targetRsync
		needRsync = needRsync || t == targetRsync
		needMinIO = needMinIO || t == targetMinIO || t == targetGreeterS3
	}
	if err := checkModes(o.modes); err != nil {
		return nil, err
	}
	if err := h.ensureTools(ctx, needSSH, needRsync, needMinIO); err != nil {
		return nil, err
	}
	if h.work, err = os.MkdirTemp("", "greeter-compare-"); err != nil {
		return nil, err
	}
	h.onClose(func() { h.removeAll(h.work) })
	serverBase := o.serverDir
	if serverBase == "" {
		serverBase = os.TempDir()
	}
	if h.serverDir, err = os.MkdirTemp(serverBase, "greeter-compare-data-"); err != nil {
		return nil, err
	}
	h.onClose(func() { h.removeAll(h.serverDir) })
	h.serverFS = fsKind(h.serverDir)
	fileBase, kind := o.fileDir, ""
	switch {
	case fileBase != "":
	case o.sweep || o.s3:
		fileBase, kind = defaultFileDir(o.size)
	default:
		// File to file on the servers' filesystem, as issue 15 measures.
		fileBase = serverBase
	}
	if h.files, err = os.MkdirTemp(fileBase, "greeter-compare-files-"); err != nil {
		return nil, err
	}
	h.onClose(func() { h.removeAll(h.files) })
	if kind == "" {
		kind = fsKind(h.files)
		if kind != "tmpfs" {
			kind += ", the source read once before each upload (warm in the page cache)"
		}
	}
	h.fileKind = kind
	h.bin = filepath.Join(h.work, "bin")
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return nil, err
		}
		h.prof = newProfiler(o.profile)
	}
	h.logf("building greeterd and greeter")
	if err := h.build(ctx); err != nil {
		return nil, err
	}
	switch o.traces {
	case "down":
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		h.otlp = "http://127.0.0.1:" + strconv.Itoa(port)
	case "jaeger":
		if h.otlp, err = h.startJaeger(ctx); err != nil {
			return nil, err
		}
	}
	h.logf("writing a %s source file to %s (%s)", sizeName(o.size), h.files, h.fileKind)
	h.source = filepath.Join(h.files, "source.bin")
	if h.sourceSum, err = writeSource(h.source, o.size); err != nil {
		return nil, err
	}
	return h, nil
}

// onClose registers f to run at close, in reverse order of registration.
func (h *harness) onClose(f func()) { h.closers = append(h.closers, f) }

func (h *harness) close() {
	for i := len(h.closers) - 1; i >= 0; i-- {
		h.closers[i]()
	}
	h.closers = nil
}

func (h *harness) removeAll(dir string) {
	if h.opts.keep {
		h.logf("kept %s", dir)
		return
	}
	os.RemoveAll(dir)
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "compare %6.1fs: %s\n", time.Since(h.started).Seconds(), fmt.Sprintf(format, args...))
}

// tracesEnv is the environment that makes greeterd export spans.
func (h *harness) tracesEnv() []string {
	if h.otlp == "" {
		return []string{"OTEL_TRACES_EXPORTER=none"}
	}
	return []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + h.otlp}
}

// describe prints the machine and the setup.
func (h *harness) describe(w io.Writer) {
	fmt.Fprintf(w, "\nmachine:   %s, %d CPUs, %s RAM, %s, Go %s\n", cpuModel(), runtime.NumCPU(), memTotal(), kernel(), strings.TrimPrefix(runtime.Version(), "go"))
	fmt.Fprintf(w, "load:      %s (1, 5, 15 min) at the end of the run\n", loadAvg())
	fmt.Fprintf(w, "file:      %s of random bytes; source and downloads on %s\n", sizeName(h.opts.size), h.fileKind)
	fmt.Fprintf(w, "servers:   store on %s (%s)\n", h.serverFS, h.serverDir)
	fmt.Fprintf(w, "modes:     %s; fresh servers per mode; sync before every transfer; each download's file size written and removed at its path first (warm pages)\n", strings.Join(h.opts.modes, ", "))
	if slices.Contains(h.opts.modes, modePinned) {
		fmt.Fprintf(w, "pinned:    taskset: greeterd, sshd and its sessions, MinIO and the TLS server on CPU %s; the CLI, scp, rsync, curl and the TLS client on CPU %s\n", serverCPU, clientCPU)
	}
	if h.opts.rssSize > 0 {
		fmt.Fprintf(w, "rss:       one more greeter upload and download of %s in the %s mode, for greeterd's peak RSS\n", sizeName(h.opts.rssSize), h.opts.modes[0])
	}
	traces := map[string]string{"down": "OTLP/HTTP to a closed loopback port (exports fail and are dropped)",
		"jaeger": "OTLP/HTTP to a private Jaeger all-in-one", "none": "off"}[h.opts.traces]
	has := map[string]bool{}
	for _, t := range h.opts.targets {
		has[t] = true
	}
	if has[targetGreeter] || h.opts.sweep {
		fmt.Fprintf(w, "greeter:   greeterd dev mode (TLS 1.3, mTLS requested, JWT, rate limits with --rate-transfer 1000, tracing %s, /metrics served); the CLI verifies SHA-256\n", traces)
	}
	if has[targetNoChain] || h.opts.sweep {
		fmt.Fprintf(w, "nochain:   greeterd dev mode (TLS 1.3) --auth none, every rate limit off, tracing off, no /metrics; recovery and logging cannot be switched off\n")
	}
	if has[targetRsync] {
		fmt.Fprintf(w, "rsync:     rsync %s -W over ssh (OpenSSH %s, %s) to the same sshd; verifies its whole-file checksum, no fsync\n", rsyncVersion(), sshVersion(), sshCipher)
	}
	if has[targetSCPSync] {
		fmt.Fprintf(w, "scp-sync:  scp as below, then sync FILE on the written file (fsync, on the side that wrote it), timed together\n")
	}
	if has[targetSCP] || h.opts.sweep {
		fmt.Fprintf(w, "scp:       OpenSSH %s, scp (SFTP protocol) with %s, key auth, to a private sshd; no end-to-end digest\n", sshVersion(), sshCipher)
	}
	if has[targetTLS] {
		fmt.Fprintf(w, "tls:       raw TLS 1.3 sender and receiver (Go crypto/tls, 1 MiB reads, this command), one header line; no digest, no fsync: the physical limit\n")
	}
	if has[targetGreeterS3] {
		part := "16 MiB (greeterd's default)"
		if h.opts.s3PartSize > 0 {
			part = sizeName(h.opts.s3PartSize)
		}
		fmt.Fprintf(w, "greeter-s3: greeterd dev mode with every plugin on (TLS 1.3, JWT, rate limits with --rate-transfer 1000, tracing %s, /metrics served), --storage s3 in bucket %q of the same MinIO over TLS (--s3-ca, path style), parts of %s; the CLI verifies SHA-256; server CPU and peak RSS are greeterd's alone, MinIO's are not counted\n", traces, greeterS3Bucket, part)
	}
	if has[targetMinIO] || h.opts.sweep {
		fmt.Fprintf(w, "minio:     MinIO (single drive) over TLS, curl %s --aws-sigv4 single PUT/GET (UNSIGNED-PAYLOAD); no end-to-end digest\n", curlVersion())
	}
	if h.prof != nil {
		fmt.Fprintf(w, "profiled:  greeterd and greeter built with the -cpuprofile overlay (profiling costs a few %% of CPU)\n")
	}
	fmt.Fprintf(w, "duration:  %s\n", time.Since(h.started).Round(time.Second))
}

// writeSource writes size pseudo-random (incompressible) bytes to path and
// returns their hex SHA-256.
func writeSource(path string, size int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{'g', 'r', 'e', 'e', 't', 'e', 'r'})
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int(min(left, int64(len(buf))))
		rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return "", err
		}
		left -= int64(n)
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// defaultFileDir is /dev/shm when it and the memory left can hold the
// source and one download with room to spare; otherwise the temp dir.
func defaultFileDir(size int64) (string, string) {
	var st syscall.Statfs_t
	if syscall.Statfs("/dev/shm", &st) == nil && int64(st.Bavail)*st.Bsize > 2*size+(512<<20) && memAvailable() > 2*size+(4<<30) {
		return "/dev/shm", "tmpfs (/dev/shm)"
	}
	return os.TempDir(), ""
}

func fsKind(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown filesystem"
	}
	switch st.Type {
	case 0x01021994:
		return "tmpfs"
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("filesystem 0x%x", st.Type)
}

func meminfo(key string) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func memAvailable() int64 { return meminfo("MemAvailable") }
func memTotal() string    { return fmt.Sprintf("%.0f GiB", float64(meminfo("MemTotal"))/(1<<30)) }

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	data, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(data))
}

func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func sshVersion() string {
	out, _ := exec.Command("ssh", "-V").CombinedOutput()
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), ",")
	return strings.TrimPrefix(v, "OpenSSH_")
}

func rsyncVersion() string {
	out, _ := exec.Command("rsync", "--version").Output()
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "?"
	}
	return f[2]
}

func curlVersion() string {
	out, _ := exec.Command("curl", "--version").Output()
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return "?"
	}
	return f[1]
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
