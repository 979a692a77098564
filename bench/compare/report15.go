package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
)

// Issue 15's targets.
const (
	wantVsRsync          = 2.5      // pinned, median of per-round pairs
	wantVsSCPSync        = 2.5      // pinned, median of per-round pairs
	wantVsSCPBest        = 0.8      // pinned, greeter's median over scp's best round
	maxCPUVsSCPBest      = 1.2      // pinned, machine CPU s/GB over scp's best round's
	wantSharedVsSCPBest  = 0.9      // shared, greeter's median over scp's best round
	maxGreeterdPeakRSS15 = 40 << 20 // greeterd's VmHWM over the whole run
)

// byRound returns f of the samples of mode, op and target, keyed by round
// (the RSS transfer, round 0, left out).
func byRound(samples []sample, mode, op, target string, f func(sample) float64) map[int]float64 {
	out := map[int]float64{}
	for _, s := range samples {
		if s.Mode == mode && s.Op == op && s.Target == target && s.Round > 0 {
			out[s.Round] = f(s)
		}
	}
	return out
}

// pairedRatio is the median, over the rounds both have, of a's value over
// b's in the same round: the ratio against a peer that is steady from
// round to round.
func pairedRatio(a, b map[int]float64) (float64, bool) {
	var per []float64
	for r, x := range a {
		if y, ok := b[r]; ok && y > 0 {
			per = append(per, x/y)
		}
	}
	if len(per) == 0 {
		return 0, false
	}
	return median(per), true
}

// bestRound is the round in which b's value is highest (the earliest of
// equal ones).
func bestRound(b map[int]float64) (int, bool) {
	rounds := slices.Sorted(maps.Keys(b))
	if len(rounds) == 0 {
		return 0, false
	}
	best := rounds[0]
	for _, r := range rounds[1:] {
		if b[r] > b[best] {
			best = r
		}
	}
	return best, true
}

// overBestRound is a's median over b's best round: the ratio against a
// peer that swings from round to round (plain scp).
func overBestRound(a, b map[int]float64) (float64, bool) {
	r, ok := bestRound(b)
	if !ok || len(a) == 0 || b[r] <= 0 {
		return 0, false
	}
	return median(slices.Collect(maps.Values(a))) / b[r], true
}

// cpuOverBestRound is a's median CPU per GB over b's CPU per GB in b's
// best round by throughput (bMBps): fast rounds of scp also spend less CPU
// per byte, so this is the stricter baseline.
func cpuOverBestRound(aCPU, bMBps, bCPU map[int]float64) (float64, bool) {
	r, ok := bestRound(bMBps)
	if !ok || len(aCPU) == 0 || bCPU[r] <= 0 {
		return 0, false
	}
	return median(slices.Collect(maps.Values(aCPU))) / bCPU[r], true
}

// judge reports whether value meets want: at most want if atMost, else at
// least.
func judge(value, want float64, atMost bool) bool {
	if atMost {
		return value <= want
	}
	return value >= want
}

// cell is one measured value of a target row.
type cell struct {
	value    float64
	measured bool
}

// targetRow is one row of issue 15's Targets table with its measurements.
type targetRow struct {
	label  string
	want   float64
	atMost bool
	unit   string  // "×" or " MiB"
	cells  [2]cell // upload, download
}

// pass reports the verdict of cell i; an unmeasured cell does not pass.
func (r targetRow) pass(i int) bool {
	return r.cells[i].measured && judge(r.cells[i].value, r.want, r.atMost)
}

func machinePerGB(s sample) float64 { return s.MachineCPU.Seconds() / (float64(s.Bytes) / 1e9) }

// issue15Rows measures every row of issue 15's Targets table, in its order.
func issue15Rows(samples []sample) []targetRow {
	rows := []targetRow{
		{label: "pinned, vs rsync over ssh (median of per-round pairs)", want: wantVsRsync, unit: "×"},
		{label: "pinned, vs scp + fsync (median of per-round pairs)", want: wantVsSCPSync, unit: "×"},
		{label: "pinned, greeter's median vs plain scp's best round", want: wantVsSCPBest, unit: "×"},
		{label: "pinned, machine CPU s per GB vs scp's best round", want: maxCPUVsSCPBest, atMost: true, unit: "×"},
		{label: "shared cores, greeter's median vs scp's best round", want: wantSharedVsSCPBest, unit: "×"},
		{label: "greeterd peak RSS over the whole run (1 GiB; and a 4 GiB transfer)", want: maxGreeterdPeakRSS15 >> 20, atMost: true, unit: " MiB"},
	}
	for i, op := range ops {
		mbps := func(mode, target string) map[int]float64 { return byRound(samples, mode, op, target, sample.MBps) }
		g := mbps(modePinned, targetGreeter)
		rows[0].cells[i] = measured(pairedRatio(g, mbps(modePinned, targetRsync)))
		rows[1].cells[i] = measured(pairedRatio(g, mbps(modePinned, targetSCPSync)))
		rows[2].cells[i] = measured(overBestRound(g, mbps(modePinned, targetSCP)))
		rows[3].cells[i] = measured(cpuOverBestRound(byRound(samples, modePinned, op, targetGreeter, machinePerGB),
			mbps(modePinned, targetSCP), byRound(samples, modePinned, op, targetSCP, machinePerGB)))
		rows[4].cells[i] = measured(overBestRound(mbps(modeShared, targetGreeter), mbps(modeShared, targetSCP)))
		if peak := greeterdPeak(samples, op); peak > 0 {
			rows[5].cells[i] = cell{float64(peak) / (1 << 20), true}
		}
	}
	return rows
}

func measured(v float64, ok bool) cell { return cell{v, ok} }

// greeterdPeak is the highest VmHWM of the greeter target's greeterd over
// every transfer of op in every mode, the RSS transfer included.
func greeterdPeak(samples []sample, op string) int64 {
	var peak int64
	for _, s := range samples {
		if s.Target == targetGreeter && s.Op == op {
			peak = max(peak, s.ServerPeak)
		}
	}
	return peak
}

// printIssue15 prints the verdict on every row of issue 15's targets, and
// the baselines the ratios were taken against.
func printIssue15(w io.Writer, samples []sample) {
	fmt.Fprintf(w, "\nissue 15 targets (PASS/MISS, measured, target)\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tupload\tdownload\ttarget\t")
	for _, r := range issue15Rows(samples) {
		fmt.Fprintf(tw, "%s", r.label)
		for i := range r.cells {
			fmt.Fprintf(tw, "\t%s", r.cellText(i))
		}
		cmp := "≥"
		if r.atMost {
			cmp = "≤"
		}
		fmt.Fprintf(tw, "\t%s %s%s\t\n", cmp, trimFloat(r.want), r.unit)
	}
	tw.Flush()
	for _, mode := range []string{modePinned, modeShared} {
		for _, op := range ops {
			scp := byRound(samples, mode, op, targetSCP, sample.MBps)
			r, ok := bestRound(scp)
			g := byRound(samples, mode, op, targetGreeter, sample.MBps)
			if !ok || len(g) == 0 {
				continue
			}
			fmt.Fprintf(w, "%s %s: greeter median %.0f MB/s, %.2f machine CPU s/GB; scp's best round %d: %.0f MB/s, %.2f machine CPU s/GB (scp's rounds %.0f–%.0f MB/s)\n",
				mode, op, median(slices.Collect(maps.Values(g))),
				median(slices.Collect(maps.Values(byRound(samples, mode, op, targetGreeter, machinePerGB)))),
				r, scp[r], byRound(samples, mode, op, targetSCP, machinePerGB)[r],
				slices.Min(slices.Collect(maps.Values(scp))), slices.Max(slices.Collect(maps.Values(scp))))
		}
	}
	rss := 0
	for _, s := range samples {
		if s.Round == 0 {
			rss++
		}
	}
	if rss > 0 {
		fmt.Fprintf(w, "greeterd peak RSS: VmHWM reset before each transfer, highest over every transfer of both modes and the RSS transfer\n")
	}
}

// cellText is "PASS 2.71×", "MISS 0.59×" or "n/a" (not measured).
func (r targetRow) cellText(i int) string {
	c := r.cells[i]
	if !c.measured {
		return "n/a"
	}
	word := "MISS"
	if r.pass(i) {
		word = "PASS"
	}
	if r.unit == "×" {
		return fmt.Sprintf("%s %.2f×", word, c.value)
	}
	return fmt.Sprintf("%s %.1f%s", word, c.value, r.unit)
}

// trimFloat prints a target without trailing zeros: 2.5, 0.8, 40.
func trimFloat(x float64) string { return fmt.Sprintf("%g", x) }
