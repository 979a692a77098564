package main

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// near allows for the nanosecond rounding of the samples' wall times.
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func TestPairedRatio(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b map[int]float64
		want float64
		ok   bool
	}{
		// Per round 3, 2, 2: the median is 2. The ratio of the medians
		// would be 200/75 = 2.67, and round 4 has no pair.
		{"paired", map[int]float64{1: 300, 2: 200, 3: 100}, map[int]float64{1: 100, 2: 100, 3: 50, 4: 10}, 2, true},
		// An even count: the mean of the middle two, (1.5 + 2) / 2.
		{"even", map[int]float64{1: 150, 2: 200}, map[int]float64{1: 100, 2: 100}, 1.75, true},
		{"no common round", map[int]float64{1: 100}, map[int]float64{2: 100}, 0, false},
		{"empty", nil, map[int]float64{1: 1}, 0, false},
	} {
		got, ok := pairedRatio(tc.a, tc.b)
		if ok != tc.ok || !near(got, tc.want) {
			t.Errorf("%s: pairedRatio = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestOverBestRound(t *testing.T) {
	// greeter's median 500 over scp's best round 750, not its median 500.
	got, ok := overBestRound(map[int]float64{1: 400, 2: 500, 3: 600}, map[int]float64{1: 300, 2: 750, 3: 500})
	if !ok || !near(got, 500.0/750) {
		t.Errorf("overBestRound = %v, %v; want %v", got, ok, 500.0/750)
	}
	if _, ok := overBestRound(map[int]float64{1: 1}, nil); ok {
		t.Errorf("overBestRound without a baseline round succeeded")
	}
}

func TestBestRound(t *testing.T) {
	for _, tc := range []struct {
		b    map[int]float64
		want int
	}{
		{map[int]float64{1: 10, 2: 30, 3: 20}, 2},
		{map[int]float64{4: 30, 2: 30, 3: 20}, 2}, // ties: the earliest
		{map[int]float64{5: 1}, 5},
	} {
		if got, ok := bestRound(tc.b); !ok || got != tc.want {
			t.Errorf("bestRound(%v) = %d, %v; want %d", tc.b, got, ok, tc.want)
		}
	}
}

func TestCPUOverBestRound(t *testing.T) {
	// scp's fastest round is 2, where it spent 2.5 s/GB; greeter's median
	// is 3 s/GB: 1.2×. Neither scp's lowest (1) nor its median (1.5) CPU.
	got, ok := cpuOverBestRound(map[int]float64{1: 3, 2: 2, 3: 4},
		map[int]float64{1: 500, 2: 700, 3: 600}, map[int]float64{1: 1, 2: 2.5, 3: 1.5})
	if !ok || !near(got, 1.2) {
		t.Errorf("cpuOverBestRound = %v, %v; want 1.2", got, ok)
	}
}

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		value, want float64
		atMost      bool
		pass        bool
	}{
		{2.5, 2.5, false, true},
		{2.49, 2.5, false, false},
		{3, 2.5, false, true},
		{1.2, 1.2, true, true},
		{1.21, 1.2, true, false},
		{0.5, 1.2, true, true},
	} {
		if got := judge(tc.value, tc.want, tc.atMost); got != tc.pass {
			t.Errorf("judge(%v, %v, atMost %v) = %v; want %v", tc.value, tc.want, tc.atMost, got, tc.pass)
		}
	}
}

// mbpsSample is a 1 GB transfer at mbps with cpu machine CPU seconds.
func mbpsSample(mode, op, target string, round int, mbps, cpu float64, peak int64) sample {
	const size = 1e9
	return sample{Round: round, Op: op, Target: target, Bytes: size, Mode: mode, ServerPeak: peak,
		Wall:       time.Duration(size / 1e6 / mbps * float64(time.Second)),
		MachineCPU: time.Duration(cpu * float64(time.Second))}
}

// issue15Samples is three rounds per mode in which greeter uploads at a
// median 400 MB/s and downloads at 600 MB/s, rsync and scp-sync at a fifth of that,
// and plain scp swings between rounds, its best round (2) at 600 MB/s up
// and 500 down.
func issue15Samples() []sample {
	var out []sample
	scpUp := []float64{300, 600, 400}
	scpDown := []float64{450, 500, 250}
	for _, mode := range []string{modePinned, modeShared} {
		for r := 1; r <= 3; r++ {
			for i, op := range ops {
				// greeter varies by ±5 % around its median: the RSS
				// transfer would move the median if it counted.
				g := []float64{400, 600}[i] * []float64{0.95, 1, 1.05}[r-1]
				cpu := []float64{2.3, 2.4, 2.5}[r-1]
				scp := []float64{scpUp[r-1], scpDown[r-1]}[i]
				out = append(out,
					mbpsSample(mode, op, targetGreeter, r, g, cpu, int64(30+r)<<20),
					mbpsSample(mode, op, targetRsync, r, g/5, 3, 0),
					mbpsSample(mode, op, targetSCPSync, r, g/2, 3, 0),
					// CPU per GB in scp's best round: 2 s up, 3 s down.
					mbpsSample(mode, op, targetSCP, r, scp, map[bool]float64{true: []float64{2, 3}[i], false: 1}[r == 2], 0))
			}
		}
	}
	// The RSS transfer (round 0) is slow and counts only for the RSS row.
	out = append(out, mbpsSample(modePinned, "upload", targetGreeter, 0, 1, 99, 45<<20))
	return out
}

func TestIssue15Rows(t *testing.T) {
	rows := issue15Rows(issue15Samples())
	want := []struct {
		value [2]float64
		pass  [2]bool
	}{
		{[2]float64{5, 5}, [2]bool{true, true}},                      // vs rsync
		{[2]float64{2, 2}, [2]bool{false, false}},                    // vs scp + fsync
		{[2]float64{400.0 / 600, 600.0 / 500}, [2]bool{false, true}}, // vs scp's best, pinned
		{[2]float64{2.4 / 2, 2.4 / 3}, [2]bool{true, true}},          // CPU: 1.2 is the limit itself
		{[2]float64{400.0 / 600, 600.0 / 500}, [2]bool{false, true}}, // vs scp's best, shared
		{[2]float64{45, 33}, [2]bool{false, true}},                   // RSS: the RSS upload's 45 MiB
	}
	if len(rows) != len(want) {
		t.Fatalf("issue15Rows returned %d rows, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		for j := range 2 {
			if !r.cells[j].measured || !near(r.cells[j].value, want[i].value[j]) || r.pass(j) != want[i].pass[j] {
				t.Errorf("%s, %s: %v (measured %v), pass %v; want %v, pass %v", r.label, ops[j],
					r.cells[j].value, r.cells[j].measured, r.pass(j), want[i].value[j], want[i].pass[j])
			}
		}
	}
}

func TestIssue15RowsUnmeasured(t *testing.T) {
	var pinnedOnly []sample
	for _, s := range issue15Samples() {
		if s.Mode == modePinned && s.Target != targetRsync {
			pinnedOnly = append(pinnedOnly, s)
		}
	}
	rows := issue15Rows(pinnedOnly)
	for _, i := range []int{0, 4} { // no rsync; no shared mode
		for j := range 2 {
			if rows[i].cells[j].measured || rows[i].pass(j) {
				t.Errorf("%s, %s: measured %v, pass %v without samples", rows[i].label, ops[j], rows[i].cells[j].measured, rows[i].pass(j))
			}
		}
	}
}

func TestPrintIssue15(t *testing.T) {
	var b bytes.Buffer
	printReport(&b, issue15Samples(), []string{targetGreeter, targetRsync, targetSCPSync, targetSCP}, 1e9)
	out := b.String()
	for _, want := range []string{
		"== pinned: servers on CPU 0, clients on CPU 1 ==",
		"== shared cores: servers and clients on every CPU ==",
		"pinned, vs rsync over ssh (median of per-round pairs)               PASS 5.00×     PASS 5.00×     ≥ 2.5×",
		"pinned, vs scp + fsync (median of per-round pairs)                  MISS 2.00×     MISS 2.00×     ≥ 2.5×",
		"pinned, machine CPU s per GB vs scp's best round                    PASS 1.20×     PASS 0.80×     ≤ 1.2×",
		"greeterd peak RSS over the whole run (1 GiB; and a 4 GiB transfer)  MISS 45.0 MiB  PASS 33.0 MiB  ≤ 40 MiB",
		"pinned upload: greeter median 400 MB/s, 2.40 machine CPU s/GB; scp's best round 2: 600 MB/s, 2.00 machine CPU s/GB (scp's rounds 300–600 MB/s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// The RSS transfer's 1 MB/s is in no throughput figure.
	if strings.Contains(out, " 1–") {
		t.Errorf("the RSS transfer counts in a throughput range:\n%s", out)
	}
}

func TestParseBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice:
	// busy = 100+20+30+6+7+8 ticks; idle, iowait and guest are not added.
	got, err := parseBusy("cpu  100 20 30 4000 50 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if want := 1710 * time.Millisecond; err != nil || got != want {
		t.Errorf("parseBusy = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3 4 5 6 7"} {
		if _, err := parseBusy(bad); err == nil {
			t.Errorf("parseBusy(%q) succeeded", bad)
		}
	}
	if got, err := machineBusy(); err != nil || got <= 0 {
		t.Errorf("machineBusy = %v, %v", got, err)
	}
}

func TestParseFlagsModes(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		modes []string
		rss   int64
	}{
		{nil, []string{modePinned, modeShared}, 4 << 30},
		{[]string{"-rss-size", "0", "-modes", "shared,pinned"}, []string{modeShared, modePinned}, 0},
		{[]string{"-s3"}, []string{modeShared}, 0},
		{[]string{"-sweep"}, []string{modeShared}, 0},
		{[]string{"-s3", "-modes", "pinned"}, []string{modePinned}, 0},
	} {
		o, err := parseFlags(tc.args)
		if err != nil {
			t.Fatalf("parseFlags(%q): %v", tc.args, err)
		}
		if !slices.Equal(o.modes, tc.modes) || o.rssSize != tc.rss {
			t.Errorf("parseFlags(%q) = modes %q, rss %d; want %q, %d", tc.args, o.modes, o.rssSize, tc.modes, tc.rss)
		}
	}
	o, _ := parseFlags(nil)
	if want := []string{targetGreeter, targetRsync, targetSCPSync, targetSCP, targetMinIO, targetTLS}; !slices.Equal(o.targets, want) {
		t.Errorf("default targets %q, want %q", o.targets, want)
	}
	for _, args := range [][]string{{"-modes", "both"}, {"-modes", ""}, {"-rss-size", "1KiB"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) succeeded; want an error", args)
		}
	}
}

func TestPinned(t *testing.T) {
	argv := []string{"scp", "a", "b"}
	if got := pinned(modePinned, clientCPU, argv); !slices.Equal(got, []string{"taskset", "-c", "1", "scp", "a", "b"}) {
		t.Errorf("pinned = %q", got)
	}
	if got := pinned(modeShared, clientCPU, argv); !slices.Equal(got, argv) {
		t.Errorf("shared = %q", got)
	}
}

func TestRenderModesChartFromCSV(t *testing.T) {
	dir := t.TempDir()
	csvPath, chart := filepath.Join(dir, "run.csv"), filepath.Join(dir, "chart.png")
	in := issue15Samples()
	if err := writeCSV(csvPath, in); err != nil {
		t.Fatal(err)
	}
	got, err := readCSV(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("read %d samples, wrote %d", len(got), len(in))
	}
	for i := range in {
		if got[i].Mode != in[i].Mode || got[i].Round != in[i].Round ||
			math.Abs(got[i].MachineCPU.Seconds()-in[i].MachineCPU.Seconds()) > 1e-3 {
			t.Fatalf("sample %d read back as %+v, wrote %+v", i, got[i], in[i])
		}
	}
	if err := renderAnyChart(chart, got); err != nil {
		t.Fatalf("renderAnyChart: %v", err)
	}
	f, err := os.Open(chart)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the chart is not a PNG: %v", err)
	}
	for _, op := range ops {
		if n := countColor(img, opColor[op]); n < 20000 {
			t.Errorf("%s bars cover %d pixels, want at least 20000", op, n)
		}
	}
}

func TestReadCSVBeforeIssue15(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.csv")
	old := strings.Join(csvHeader[:csvOldColumns], ",") + "\n1,upload,scp,1000000,2.0000,0.5,0.1,1,0.2,0\n"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readCSV(path)
	if err != nil || len(got) != 1 || got[0].Mode != modeShared || got[0].Wall != 2*time.Second {
		t.Fatalf("readCSV = %+v, %v; want one shared-mode sample of 2 s", got, err)
	}
}
