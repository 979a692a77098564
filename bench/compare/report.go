package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// The issue's targets.
const (
	wantVsSCP     = 1.2
	wantVsMinIO   = 1.5
	maxChainCost  = 0.05
	maxServerPeak = 48 << 20

	// Issue 13: greeterd on MinIO against curl straight to MinIO.
	wantS3VsDirect  = 0.6
	maxS3UploadPeak = 64 << 20
)

var ops = []string{"upload", "download"}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pick returns f of the samples of op and target, in round order, leaving
// out the RSS transfer (round 0).
func pick(samples []sample, op, target string, f func(sample) float64) []float64 {
	var out []float64
	for _, s := range samples {
		if s.Op == op && s.Target == target && s.Round > 0 {
			out = append(out, f(s))
		}
	}
	return out
}

func wallSeconds(s sample) float64 { return s.Wall.Seconds() }

// ratio is how many times faster a is than b: the ratio of the medians of
// their wall times, and the median of the per-round ratios.
func ratio(samples []sample, op, a, b string) (ofMedians, paired float64, ok bool) {
	wa, wb := pick(samples, op, a, wallSeconds), pick(samples, op, b, wallSeconds)
	if len(wa) == 0 || len(wb) == 0 {
		return 0, 0, false
	}
	var per []float64
	for i := range min(len(wa), len(wb)) {
		per = append(per, wb[i]/wa[i])
	}
	return median(wb) / median(wa), median(per), true
}

func verdict(pass bool) string {
	if pass {
		return "met"
	}
	return "NOT met"
}

// inMode returns the samples of mode.
func inMode(samples []sample, mode string) []sample {
	var out []sample
	for _, s := range samples {
		if s.Mode == mode {
			out = append(out, s)
		}
	}
	return out
}

// modesOf returns the modes of the samples in the order they were
// measured.
func modesOf(samples []sample) []string {
	var out []string
	for _, s := range samples {
		if !slices.Contains(out, s.Mode) {
			out = append(out, s.Mode)
		}
	}
	return out
}

// modeTitle describes a mode in the report's headings.
var modeTitle = map[string]string{
	modePinned: "pinned: servers on CPU 0, clients on CPU 1",
	modeShared: "shared cores: servers and clients on every CPU",
}

// printReport prints the table of every target in each mode, then the
// comparisons of the issues whose targets ran: issue 15 (greeter against
// rsync, scp + sync and scp, pinned and shared), issue 8 (the chain's
// cost, with greeter-nochain) and issue 13 (greeter on MinIO against
// MinIO).
func printReport(w io.Writer, samples []sample, targets []string, size int64) {
	modes := modesOf(samples)
	if len(modes) == 0 {
		return
	}
	for _, mode := range modes {
		if t, ok := modeTitle[mode]; ok {
			fmt.Fprintf(w, "\n== %s ==\n", t)
		}
		printTable(w, inMode(samples, mode), targets, size)
	}
	has := map[string]bool{}
	for _, t := range targets {
		has[t] = true
	}
	if has[targetGreeter] && (has[targetRsync] || has[targetSCPSync] || has[targetSCP]) {
		printIssue15(w, samples)
	}
	last := inMode(samples, modes[len(modes)-1])
	if has[targetNoChain] {
		fmt.Fprintf(w, "\nissue 8 (%s)\n", modes[len(modes)-1])
		printIssue8(w, last)
	}
	if has[targetGreeterS3] {
		printS3(w, last)
	}
}

// printTable prints the medians of every target and op.
func printTable(w io.Writer, samples []sample, targets []string, size int64) {
	rounds := 0
	for _, s := range samples {
		rounds = max(rounds, s.Round)
	}
	fmt.Fprintf(w, "\nmedians of %d interleaved rounds, %s file to file (MB/s = 10^6 bytes/s; CPU s/GB = client + server CPU per 10^9 bytes; machine = every CPU's busy time, /proc/stat)\n\n", rounds, sizeName(size))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\ttarget\tmedian s\tMB/s\tmin–max MB/s\tclient CPU s\tserver CPU s\tCPU s/GB\tmachine CPU s/GB\tserver peak RSS\tclient peak RSS\t")
	for _, op := range ops {
		for _, t := range targets {
			mbps := pick(samples, op, t, sample.MBps)
			if len(mbps) == 0 {
				continue
			}
			gb := float64(size) / 1e9
			ccpu := median(pick(samples, op, t, func(s sample) float64 { return s.ClientCPU.Seconds() }))
			scpu := median(pick(samples, op, t, func(s sample) float64 { return s.ServerCPU.Seconds() }))
			machine := median(pick(samples, op, t, machinePerGB))
			peak := slices.Max(pick(samples, op, t, func(s sample) float64 { return float64(s.ServerPeak) }))
			crss := slices.Max(pick(samples, op, t, func(s sample) float64 { return float64(s.ClientRSS) }))
			peakText := "n/a"
			if peak > 0 {
				peakText = mib(int64(peak))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.0f\t%.0f–%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n", op, t,
				median(pick(samples, op, t, wallSeconds)), median(mbps), slices.Min(mbps), slices.Max(mbps),
				ccpu, scpu, (ccpu+scpu)/gb, machine, peakText, mib(int64(crss)))
		}
	}
	tw.Flush()
}

// ratioHeader introduces a table of ratios.
const ratioHeader = "\nratios of throughput (of the medians; median of the per-round ratios in parentheses)\n\n"

// ratioRow prints the ratio of a's throughput to b's for each op, and the
// target want, as one row of tw.
func ratioRow(tw io.Writer, samples []sample, label, a, b string, want float64) {
	verdictRow(tw, label, want, func(op string) (float64, string, bool) {
		r, p, ok := ratio(samples, op, a, b)
		return r, fmt.Sprintf("%.2f× (%.2f×)", r, p), ok
	})
}

// bestRoundRow prints a's median throughput over b's in b's best round,
// for each op: curl's rounds on this VM swing (some at half speed while
// greeter's stay steady), so the medians of ratioRow can flatter a.
func bestRoundRow(tw io.Writer, samples []sample, label, a, b string, want float64) {
	verdictRow(tw, label, want, func(op string) (float64, string, bool) {
		mode := ""
		for _, s := range samples {
			if s.Target == a && s.Op == op && s.Round > 0 {
				mode = s.Mode
			}
		}
		r, ok := overBestRound(byRound(samples, mode, op, a, sample.MBps), byRound(samples, mode, op, b, sample.MBps))
		return r, fmt.Sprintf("%.2f×", r), ok
	})
}

// verdictRow prints one row of tw: label, then for each op the value cell
// gives (shown as it says, with its verdict against want, or "–" when not
// measured), then the target.
func verdictRow(tw io.Writer, label string, want float64, cell func(op string) (float64, string, bool)) {
	fmt.Fprintf(tw, "%s", label)
	for _, op := range ops {
		r, shown, ok := cell(op)
		if !ok {
			fmt.Fprintf(tw, "\t–")
			continue
		}
		fmt.Fprintf(tw, "\t%s %s", shown, verdict(r >= want))
	}
	fmt.Fprintf(tw, "\t≥ %.1f×\t\n", want)
}

// peakOf returns the highest server peak RSS of target's samples of op
// ("" for every op), or 0 if none was read.
func peakOf(samples []sample, target, op string) int64 {
	var peak int64
	for _, s := range samples {
		if s.Target == target && (op == "" || s.Op == op) {
			peak = max(peak, s.ServerPeak)
		}
	}
	return peak
}

// printIssue8 prints greeter against scp and MinIO, the chain's cost and
// greeterd's peak RSS (issue 8).
func printIssue8(w io.Writer, samples []sample) {
	fmt.Fprint(w, ratioHeader)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "comparison\tupload\tdownload\ttarget\t")
	ratioRow(tw, samples, "greeter / scp", targetGreeter, targetSCP, wantVsSCP)
	ratioRow(tw, samples, "greeter / minio", targetGreeter, targetMinIO, wantVsMinIO)
	fmt.Fprintf(tw, "chain cost: 1 − greeter / greeter-nochain")
	for _, op := range ops {
		r, p, ok := ratio(samples, op, targetGreeter, targetNoChain)
		if !ok {
			fmt.Fprintf(tw, "\t–")
			continue
		}
		fmt.Fprintf(tw, "\t%.1f %% (%.1f %%) %s", 100*(1-r), 100*(1-p), verdict(1-r <= maxChainCost))
	}
	fmt.Fprintf(tw, "\t≤ %.0f %%\t\n", 100*maxChainCost)
	tw.Flush()

	for _, t := range []string{targetGreeter, targetNoChain} {
		if peak := peakOf(samples, t, ""); peak > 0 {
			fmt.Fprintf(w, "\n%s: greeterd peak RSS (VmHWM, reset before each transfer), highest of all transfers: %s; target ≤ %s: %s",
				t, mib(peak), mib(maxServerPeak), verdict(peak <= maxServerPeak))
		}
	}
	fmt.Fprintln(w)
}

// printS3 prints greeterd on MinIO against curl straight to the same MinIO
// and greeterd's peak RSS while it uploads (issue 13).
func printS3(w io.Writer, samples []sample) {
	fmt.Fprint(w, ratioHeader)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "comparison\tupload\tdownload\ttarget\t")
	ratioRow(tw, samples, "greeter on MinIO / curl to MinIO", targetGreeterS3, targetMinIO, wantS3VsDirect)
	bestRoundRow(tw, samples, "stricter: greeter / curl's best round", targetGreeterS3, targetMinIO, wantS3VsDirect)
	tw.Flush()
	if peak := peakOf(samples, targetGreeterS3, "upload"); peak > 0 {
		fmt.Fprintf(w, "\n%s: greeterd peak RSS (VmHWM, reset before each transfer), highest of the uploads: %s; target ≤ %s: %s",
			targetGreeterS3, mib(peak), mib(maxS3UploadPeak), verdict(peak <= maxS3UploadPeak))
	}
	if peak := peakOf(samples, targetGreeterS3, "download"); peak > 0 {
		fmt.Fprintf(w, "\n%s: greeterd peak RSS, highest of the downloads: %s", targetGreeterS3, mib(peak))
	}
	fmt.Fprintln(w)
}

func printSweep(w io.Writer, samples []sample, targets []string) {
	fmt.Fprintf(w, "\nmedian MB/s by configuration (greeterd dev mode; chunk sizes with every plugin on, plugins at 256 KiB)\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "configuration\tupload MB/s\tdownload MB/s\tupload server CPU s/GB\tdownload server CPU s/GB\tserver peak RSS\t")
	for _, t := range targets {
		fmt.Fprintf(tw, "%s", t)
		for _, op := range ops {
			fmt.Fprintf(tw, "\t%.0f", median(pick(samples, op, t, sample.MBps)))
		}
		for _, op := range ops {
			fmt.Fprintf(tw, "\t%.2f", median(pick(samples, op, t, func(s sample) float64 { return s.ServerCPU.Seconds() / (float64(s.Bytes) / 1e9) })))
		}
		var peak int64
		for _, s := range samples {
			if s.Target == t {
				peak = max(peak, s.ServerPeak)
			}
		}
		peakText := "n/a"
		if peak > 0 {
			peakText = mib(peak)
		}
		fmt.Fprintf(tw, "\t%s\t\n", peakText)
	}
	tw.Flush()
}

// csvHeader names the CSV columns; files written before issue 15 lack the
// last two (mode and machine CPU) and are still read.
var csvHeader = []string{"round", "op", "target", "bytes", "wall_s", "mb_per_s", "client_cpu_s", "client_peak_rss", "server_cpu_s", "server_peak_rss", "mode", "machine_cpu_s"}

// csvOldColumns is the number of columns of files written before issue 15.
const csvOldColumns = 10

func writeCSV(path string, samples []sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	cw.Write(csvHeader)
	for _, s := range samples {
		cw.Write([]string{
			strconv.Itoa(s.Round), s.Op, s.Target, strconv.FormatInt(s.Bytes, 10),
			strconv.FormatFloat(s.Wall.Seconds(), 'f', 4, 64), strconv.FormatFloat(s.MBps(), 'f', 1, 64),
			strconv.FormatFloat(s.ClientCPU.Seconds(), 'f', 3, 64), strconv.FormatInt(s.ClientRSS, 10),
			strconv.FormatFloat(s.ServerCPU.Seconds(), 'f', 3, 64), strconv.FormatInt(s.ServerPeak, 10),
			s.Mode, strconv.FormatFloat(s.MachineCPU.Seconds(), 'f', 3, 64),
		})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readCSV(path string) ([]sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || !(slices.Equal(rows[0], csvHeader) || slices.Equal(rows[0], csvHeader[:csvOldColumns])) {
		return nil, fmt.Errorf("%s: not a CSV file written by compare -csv", path)
	}
	var out []sample
	for i, r := range rows[1:] {
		round, e1 := strconv.Atoi(r[0])
		n, e2 := strconv.ParseInt(r[3], 10, 64)
		wall, e3 := strconv.ParseFloat(r[4], 64)
		ccpu, e4 := strconv.ParseFloat(r[6], 64)
		crss, e5 := strconv.ParseInt(r[7], 10, 64)
		scpu, e6 := strconv.ParseFloat(r[8], 64)
		peak, e7 := strconv.ParseInt(r[9], 10, 64)
		for _, e := range []error{e1, e2, e3, e4, e5, e6, e7} {
			if e != nil {
				return nil, fmt.Errorf("%s line %d: %v", path, i+2, e)
			}
		}
		sec := func(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }
		s := sample{Round: round, Op: r[1], Target: r[2], Bytes: n, Wall: sec(wall),
			ClientCPU: sec(ccpu), ClientRSS: crss, ServerCPU: sec(scpu), ServerPeak: peak, Mode: modeShared}
		if len(r) == len(csvHeader) {
			machine, err := strconv.ParseFloat(r[11], 64)
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %v", path, i+2, err)
			}
			s.Mode, s.MachineCPU = r[10], sec(machine)
		}
		out = append(out, s)
	}
	return out, nil
}
