package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws "name  42.0 MiB  310.2 MiB/s  ETA 3s" on a terminal at
// most ten times a second. On anything else it draws nothing.
type progressBar struct {
	mu      sync.Mutex
	w       io.Writer
	name    string
	total   int64 // 0 when unknown
	start   time.Time
	last    time.Time
	enabled bool
}

func (o *output) progress(name string) *progressBar {
	return &progressBar{w: o.stderr, name: name, start: time.Now(), enabled: o.interactive}
}

func (p *progressBar) update(done, total int64) {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = total
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	p.draw(done, now)
}

func (p *progressBar) draw(done int64, now time.Time) {
	elapsed := now.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed
	}
	line := fmt.Sprintf("\r%-24.24s %10s %10s/s", p.name, human(float64(done)), human(rate))
	if p.total > 0 && rate > 0 {
		eta := time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second)
		line += fmt.Sprintf("  %3d%%  ETA %s", done*100/p.total, eta)
	}
	fmt.Fprint(p.w, line+"\x1b[K")
}

// finish ends the bar's line.
func (p *progressBar) finish(error) {
	if p.enabled {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

func human(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
