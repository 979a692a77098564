package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// With -cpuprofile, greeterd and greeter are built with a go build
// -overlay that adds CPU profiling to their main functions; nothing in the
// tree changes. greeter writes one profile per run. greeterd starts a new
// profile file on every SIGUSR1, so the harness can cut out each transfer.

// profileEnv names the directory the profiled binaries write to.
const profileEnv = "COMPARE_CPUPROFILE_DIR"

// runCall is the line of both commands' main functions the overlay wraps.
const runCall = "code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)"

const profileSource = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"syscall"
)

// profiled runs f under the CPU profiler when ` + profileEnv + ` is set
// (added by bench/compare -cpuprofile through a build overlay). Each
// SIGUSR1 closes the current profile and starts the next, <n>.pprof.
func profiled(f func() int) int {
	dir := os.Getenv("` + profileEnv + `")
	if dir == "" {
		return f()
	}
	var (
		mu   sync.Mutex
		file *os.File
		seq  int
	)
	rotate := func(next bool) {
		mu.Lock()
		defer mu.Unlock()
		if file != nil {
			pprof.StopCPUProfile()
			file.Close()
			os.Rename(file.Name(), filepath.Join(dir, fmt.Sprintf("%d.pprof", seq-1)))
			file = nil
		}
		if !next {
			return
		}
		fl, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.pprof.tmp", seq)))
		if err != nil {
			return
		}
		seq++
		file = fl
		pprof.StartCPUProfile(fl)
	}
	rotate(true)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		for range sig {
			rotate(true)
		}
	}()
	code := f()
	signal.Stop(sig)
	rotate(false)
	return code
}
`

// writeOverlay writes the build overlay that adds profiled to both
// commands and returns its path.
func (h *harness) writeOverlay() (string, error) {
	dir, err := mkdir(h.work, "overlay")
	if err != nil {
		return "", err
	}
	replace := map[string]string{}
	for _, cmd := range []string{"greeterd", "greeter"} {
		mainPath := filepath.Join(h.root, "cmd", cmd, "main.go")
		src, err := os.ReadFile(mainPath)
		if err != nil {
			return "", err
		}
		if !strings.Contains(string(src), runCall) {
			return "", fmt.Errorf("-cpuprofile: %s no longer contains %q; update bench/compare/profile.go", mainPath, runCall)
		}
		patched := strings.Replace(string(src), runCall,
			"code := profiled(func() int { return run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv) })", 1)
		mainCopy := filepath.Join(dir, cmd+"-main.go")
		extra := filepath.Join(dir, cmd+"-profile.go")
		if err := os.WriteFile(mainCopy, []byte(patched), 0o600); err != nil {
			return "", err
		}
		if err := os.WriteFile(extra, []byte(profileSource), 0o600); err != nil {
			return "", err
		}
		replace[mainPath] = mainCopy
		replace[filepath.Join(h.root, "cmd", cmd, "zz_compare_profile.go")] = extra
	}
	data, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "overlay.json")
	return path, os.WriteFile(path, data, 0o600)
}

// profiler cuts greeterd's profile into one file per transfer and gives
// each greeter run its own directory.
type profiler struct {
	dir   string              // -cpuprofile
	seq   map[*process]int    // next profile number of each greeterd
	files map[string][]string // "target/op/server" → profile files
	procs map[*process]string // greeterd → its profile directory
	cli   map[string]int      // "target/op" → runs so far
}

func newProfiler(dir string) *profiler {
	return &profiler{dir: dir, seq: map[*process]int{}, files: map[string][]string{}, procs: map[*process]string{}, cli: map[string]int{}}
}

// serverDir returns the directory greeterd named name writes profiles to.
func (p *profiler) serverDir(name string) (string, error) {
	return mkdir(p.dir, slug(name), "server")
}

func (p *profiler) register(proc *process, dir string) {
	p.procs[proc] = dir
	p.seq[proc] = 1 // profile 0 runs from start-up to the first signal
}

// begin starts a new server profile for one transfer and returns the
// environment of the profiled client run.
func (p *profiler) begin(proc *process, target, op string) ([]string, error) {
	key := target + "/" + op
	n := p.cli[key]
	p.cli[key] = n + 1
	dir, err := mkdir(p.dir, slug(target), op, "client", strconv.Itoa(n))
	if err != nil {
		return nil, err
	}
	if sdir, ok := p.procs[proc]; ok {
		file, err := p.rotate(proc, sdir)
		if err != nil {
			return nil, err
		}
		p.files[key+"/server"] = append(p.files[key+"/server"], file)
	}
	p.files[key+"/client"] = append(p.files[key+"/client"], filepath.Join(dir, "0.pprof"))
	return []string{profileEnv + "=" + dir}, nil
}

// end closes the transfer's server profile.
func (p *profiler) end(proc *process) error {
	if sdir, ok := p.procs[proc]; ok {
		_, err := p.rotate(proc, sdir)
		return err
	}
	return nil
}

// rotate signals greeterd to start profile number seq and waits until it
// has; it returns the name the profile will have once closed.
func (p *profiler) rotate(proc *process, dir string) (string, error) {
	n := p.seq[proc]
	p.seq[proc] = n + 1
	if err := syscall.Kill(proc.pid(), syscall.SIGUSR1); err != nil {
		return "", err
	}
	started := filepath.Join(dir, strconv.Itoa(n)+".pprof.tmp")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			return filepath.Join(dir, strconv.Itoa(n)+".pprof"), nil
		}
	}
	return "", fmt.Errorf("%s did not start CPU profile %d", proc.name, n)
}

// report writes, for every target and op, the top functions of the client
// and of the server (all rounds merged) to <dir>/top.txt and prints where
// the CPU time went per 10^9 bytes.
func (p *profiler) report(ctx context.Context, h *harness) error {
	keys := make([]string, 0, len(p.files))
	for k := range p.files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out strings.Builder
	for _, k := range keys {
		var files []string
		for _, f := range p.files[k] {
			if _, err := os.Stat(f); err == nil {
				files = append(files, f)
			}
		}
		if len(files) == 0 {
			continue
		}
		bin := filepath.Join(h.bin, "greeter")
		if strings.HasSuffix(k, "/server") {
			bin = filepath.Join(h.bin, "greeterd")
		}
		merged := filepath.Join(p.dir, strings.ReplaceAll(k, "/", "-")+".pprof")
		args := append([]string{"tool", "pprof", "-proto", "-output", merged, bin}, files...)
		if o, err := exec.CommandContext(ctx, "go", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("merging %s profiles: %v: %s", k, err, o)
		}
		top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", bin, merged).Output()
		if err != nil {
			return fmt.Errorf("pprof -top %s: %v", merged, err)
		}
		fmt.Fprintf(&out, "==== %s (%d runs of %s, merged into %s)\n%s\n", k, len(files), sizeName(h.opts.size), filepath.Base(merged), top)
	}
	path := filepath.Join(p.dir, "top.txt")
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		return err
	}
	h.logf("CPU profiles and pprof -top of each target and op in %s (binaries in %s are gone; the merged .pprof files carry symbols)", path, h.bin)
	return nil
}

func slug(name string) string {
	return strings.NewReplacer(" ", "-", "=", "-", "/", "-", "+", "", "(", "", ")", "", ":", "").Replace(name)
}
