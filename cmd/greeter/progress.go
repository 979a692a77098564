package main

import (
	"fmt"
	"io"
	"os"
	"strings"
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

// redrawInterval is the shortest time between two redraws of the board.
const redrawInterval = 100 * time.Millisecond

// progressBoard draws one line per running transfer,
//
//	name                         42.0 MiB  310.2 MiB/s   42%  ETA 3s
//
// and, when the command moves several files, a last line counting the
// files done and the bytes moved per second by all of them. It redraws on a
// terminal at most ten times a second and draws nothing elsewhere.
type progressBoard struct {
	mu      sync.Mutex
	w       io.Writer
	enabled bool
	files   int // files the command moves
	start   time.Time
	last    time.Time
	drawn   int // lines on screen
	active  []*progressBar
	done    int
	failed  int
	moved   int64 // bytes moved by finished transfers
	now     func() time.Time
}

// progressBar is one transfer's line on a progressBoard.
type progressBar struct {
	b     *progressBoard
	name  string
	start time.Time
	base  int64 // done at the first update: bytes already in place
	seen  bool
	done  int64
	total int64 // <= 0 when unknown
}

func (o *output) progress(files int) *progressBoard {
	return &progressBoard{w: o.stderr, enabled: o.interactive, files: files, start: time.Now(), now: time.Now}
}

// add puts a new transfer's line on the board.
func (b *progressBoard) add(name string) *progressBar {
	if !b.enabled {
		return &progressBar{b: b, name: name}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := &progressBar{b: b, name: name, start: b.now()}
	b.active = append(b.active, p)
	b.redraw(p.start, false)
	return p
}

// update is a client.Progress.
func (p *progressBar) update(done, total int64) {
	b := p.b
	if !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !p.seen {
		p.base, p.seen = done, true
	}
	// A transfer that starts over moves its bytes again.
	p.base = min(p.base, done)
	p.done, p.total = done, total
	b.redraw(b.now(), false)
}

// finish takes the transfer's line off the board.
func (p *progressBar) finish(err error) {
	b := p.b
	if !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, q := range b.active {
		if q == p {
			b.active = append(b.active[:i], b.active[i+1:]...)
			break
		}
	}
	b.done++
	if err != nil {
		b.failed++
	}
	b.moved += p.done - p.base
	b.redraw(b.now(), true)
}

// close clears the board.
func (b *progressBoard) close() {
	if !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn > 0 {
		fmt.Fprintf(b.w, "\x1b[%dF\x1b[J", b.drawn)
		b.drawn = 0
	}
}

// redraw draws the board unless it was drawn less than redrawInterval ago
// and force is false. The caller holds b.mu.
func (b *progressBoard) redraw(now time.Time, force bool) {
	if !force && now.Sub(b.last) < redrawInterval {
		return
	}
	b.last = now
	var lines []string
	var moving int64
	for _, p := range b.active {
		lines = append(lines, p.line(now))
		moving += p.done - p.base
	}
	if b.files > 1 {
		line := fmt.Sprintf("%d/%d files", b.done, b.files)
		if b.failed > 0 {
			line += fmt.Sprintf(" (%d failed)", b.failed)
		}
		line += fmt.Sprintf("  %s/s", human(rate(b.moved+moving, now.Sub(b.start))))
		lines = append(lines, line)
	}
	var s strings.Builder
	if b.drawn > 0 {
		// Back to the start of the first line drawn last time.
		fmt.Fprintf(&s, "\x1b[%dF", b.drawn)
	}
	for _, l := range lines {
		s.WriteString(l + "\x1b[K\n")
	}
	s.WriteString("\x1b[J")
	fmt.Fprint(b.w, s.String())
	b.drawn = len(lines)
}

// line renders a transfer's line.
func (p *progressBar) line(now time.Time) string {
	r := rate(p.done-p.base, now.Sub(p.start))
	line := fmt.Sprintf("%-24.24s %10s %10s/s", p.name, human(float64(p.done)), human(r))
	if p.total > 0 {
		line += fmt.Sprintf("  %3d%%", p.done*100/p.total)
		if r > 0 {
			eta := time.Duration(float64(p.total-p.done) / r * float64(time.Second)).Round(time.Second)
			line += fmt.Sprintf("  ETA %s", eta)
		}
	}
	return line
}

// rate returns n bytes over d as bytes per second.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
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
