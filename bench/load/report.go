package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// report is what the command prints, as a table or as JSON. MB are 10^6
// bytes; latencies are in milliseconds.
type report struct {
	Addr        string  `json:"addr"`
	Users       int     `json:"users"`
	Connections string  `json:"connections"`
	Subjects    int     `json:"subjects"`
	Tokens      string  `json:"tokens"`
	Mix         string  `json:"mix"`
	Size        string  `json:"size"`
	Keep        int     `json:"keep"`
	DurationS   float64 `json:"duration_s"`
	// LoadS is how long users started operations: DurationS unless
	// Interrupted. ElapsedS adds the operations in flight at the end; rates
	// are per second of ElapsedS.
	LoadS          float64        `json:"load_s"`
	ElapsedS       float64        `json:"elapsed_s"`
	Interrupted    bool           `json:"interrupted"`
	Kinds          []kindRow      `json:"kinds"`
	Total          kindRow        `json:"total"`
	ThroughputMBps float64        `json:"throughput_mb_per_s"`
	RateLimited    int            `json:"rate_limited"`
	ErrorsByCode   map[string]int `json:"errors_by_code"`
	// UnexpectedErrors counts every failure but rate-limit rejections and
	// integrity failures.
	UnexpectedErrors  int        `json:"unexpected_errors"`
	IntegrityFailures int        `json:"integrity_failures"`
	DownloadsVerified int        `json:"downloads_verified"`
	ErrorSamples      []string   `json:"error_samples,omitempty"`
	Server            *rssReport `json:"server,omitempty"`
	// Passed is true when there were no unexpected errors and no integrity
	// failures.
	Passed bool `json:"passed"`
}

// kindRow describes the operations of one kind.
type kindRow struct {
	Kind              string  `json:"kind"`
	OK                int     `json:"ok"`
	OpsPerS           float64 `json:"ops_per_s"`
	Bytes             int64   `json:"bytes"`
	MBps              float64 `json:"mb_per_s"`
	P50ms             float64 `json:"p50_ms"`
	P90ms             float64 `json:"p90_ms"`
	P99ms             float64 `json:"p99_ms"`
	Maxms             float64 `json:"max_ms"`
	RateLimited       int     `json:"rate_limited"`
	Errors            int     `json:"errors"`
	IntegrityFailures int     `json:"integrity_failures"`
}

func newReport(cfg *config, creds *credentials, res *result) *report {
	secs := res.elapsed.Seconds()
	r := &report{
		Addr:              cfg.addr,
		Users:             cfg.users,
		Connections:       "one grpc.ClientConn, so one TLS connection, per user",
		Subjects:          len(creds.tokens),
		Tokens:            creds.source,
		Mix:               cfg.mix.String(),
		Size:              cfg.sizes.String(),
		Keep:              cfg.keep,
		DurationS:         cfg.duration.Seconds(),
		LoadS:             res.loaded.Seconds(),
		Interrupted:       res.interrupted,
		ElapsedS:          secs,
		ErrorsByCode:      map[string]int{},
		DownloadsVerified: res.verified,
		ErrorSamples:      res.samples,
	}
	var all kindStats
	for k := range numKinds {
		s := &res.kinds[k]
		r.Kinds = append(r.Kinds, row(k.String(), s, secs))
		all.merge(s)
	}
	r.Total = row("total", &all, secs)
	r.ThroughputMBps = r.Total.MBps
	r.RateLimited = all.rateLimited
	r.IntegrityFailures = all.integrity
	for c, n := range all.errors {
		r.ErrorsByCode[c.String()] += n
		r.UnexpectedErrors += n
	}
	r.Passed = r.UnexpectedErrors == 0 && r.IntegrityFailures == 0
	return r
}

func row(name string, s *kindStats, secs float64) kindRow {
	slices.Sort(s.latencies)
	r := kindRow{
		Kind:              name,
		OK:                s.ok,
		Bytes:             s.bytes,
		P50ms:             ms(percentile(s.latencies, 50)),
		P90ms:             ms(percentile(s.latencies, 90)),
		P99ms:             ms(percentile(s.latencies, 99)),
		Maxms:             ms(percentile(s.latencies, 100)),
		RateLimited:       s.rateLimited,
		IntegrityFailures: s.integrity,
	}
	for _, n := range s.errors {
		r.Errors += n
	}
	if secs > 0 {
		r.OpsPerS = float64(s.ok) / secs
		r.MBps = float64(s.bytes) / 1e6 / secs
	}
	return r
}

// percentile returns the nearest-rank p-th percentile of sorted: the
// smallest value with at least p% of the values at or below it. It is 0
// for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The rank is ceil(p/100 · n), computed in integers so that 90% of 10
	// is exactly 9.
	n := len(sorted)
	rank := (int(p*100)*n + 9999) / 10000
	return sorted[min(max(rank, 1), n)-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// writeTable prints the report for people.
func (r *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "greeterd load: %d users, %s; %d subjects: %s\n", r.Users, r.Connections, r.Subjects, r.Tokens)
	fmt.Fprintf(w, "mix %s, upload size %s, keep %d files per user, against %s\n", r.Mix, r.Size, r.Keep, r.Addr)
	stop := "-duration " + strconv.FormatFloat(r.DurationS, 'g', -1, 64) + "s"
	if r.Interrupted {
		stop = "interrupted"
	}
	fmt.Fprintf(w, "operations started for %.1fs (%s), finished after %.1fs; rates are per second of that\n\n", r.LoadS, stop, r.ElapsedS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tok\tops/s\tMB/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\trate-limited\terrors\tintegrity\t")
	for _, k := range append(slices.Clone(r.Kinds), r.Total) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t\n",
			k.Kind, k.OK, k.OpsPerS, k.MBps, k.P50ms, k.P90ms, k.P99ms, k.Maxms, k.RateLimited, k.Errors, k.IntegrityFailures)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nthroughput: %.2f MB/s of file bytes (uploads + downloads; 1 MB = 10^6 bytes)\n", r.ThroughputMBps)
	fmt.Fprintf(w, "rate-limited (expected): %d\n", r.RateLimited)
	if r.UnexpectedErrors == 0 {
		fmt.Fprintln(w, "unexpected errors: 0")
	} else {
		var parts []string
		for _, c := range slices.Sorted(maps.Keys(r.ErrorsByCode)) {
			parts = append(parts, fmt.Sprintf("%s %d", c, r.ErrorsByCode[c]))
		}
		fmt.Fprintf(w, "unexpected errors: %d (%s)\n", r.UnexpectedErrors, strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "integrity failures: %d (%d downloads matched the SHA-256 recorded at upload)\n", r.IntegrityFailures, r.DownloadsVerified)
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server pid %d: peak RSS %.1f MiB (VmHWM); sampled VmRSS %.1f MiB at start, %.1f MiB max\n",
			s.PID, mib(s.PeakRSSBytes), mib(s.StartRSSBytes), mib(s.MaxRSSBytes))
	} else {
		fmt.Fprintln(w, "server RSS: not measured (give -pid or -server-cmd)")
	}
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if r.Passed {
		fmt.Fprintln(w, "result: PASS")
	} else {
		fmt.Fprintln(w, "result: FAIL")
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
