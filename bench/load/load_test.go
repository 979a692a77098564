package main

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    [kindDelete]int
		wantErr string
	}{
		{in: "hello=70,upload=15,download=15", want: [kindDelete]int{70, 15, 15}},
		{in: " upload = 1 , download=3", want: [kindDelete]int{0, 1, 3}},
		{in: "hello=1", want: [kindDelete]int{1, 0, 0}},
		{in: "hello=0", wantErr: "add up to 0"},
		{in: "download=1", wantErr: "need uploads"},
		{in: "hello=1,hello=2", wantErr: "given twice"},
		{in: "delete=1", wantErr: "unknown kind"},
		{in: "hello", wantErr: "want KIND=WEIGHT"},
		{in: "hello=-1", wantErr: "non-negative"},
	} {
		got, err := parseMix(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseMix(%q): got error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.weights != tc.want {
			t.Errorf("parseMix(%q) = %v, %v; want %v", tc.in, got.weights, err, tc.want)
		}
	}
}

func TestMixPickFollowsWeights(t *testing.T) {
	m, err := parseMix("hello=0,upload=1,download=3")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var n [numKinds]int
	for range 4000 {
		n[m.pick(r)]++
	}
	if n[kindHello] != 0 || n[kindDelete] != 0 {
		t.Errorf("picked hello %d and delete %d times, want 0", n[kindHello], n[kindDelete])
	}
	// 1:3 with a generous margin; the seed is fixed, so this cannot flake.
	if n[kindUpload] < 800 || n[kindUpload] > 1200 {
		t.Errorf("picked upload %d times of 4000, want about 1000", n[kindUpload])
	}
}

func TestParseSizeDist(t *testing.T) {
	for _, tc := range []struct {
		in       string
		min, max int64
		wantErr  bool
	}{
		{in: "256KiB", min: 256 << 10, max: 256 << 10},
		{in: "1-1MiB", min: 1, max: 1 << 20},
		{in: "4KiB=1,4MiB=1", min: 4 << 10, max: 4 << 20},
		{in: "4KiB=0,1MiB=2", min: 1 << 20, max: 1 << 20},
		{in: "2MiB-1MiB", wantErr: true},
		{in: "4KiB=0", wantErr: true},
		{in: "big", wantErr: true},
		{in: "-1", wantErr: true},
	} {
		d, err := parseSizeDist(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("parseSizeDist(%q): no error", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseSizeDist(%q): %v", tc.in, err)
			continue
		}
		r := rand.New(rand.NewPCG(3, 4))
		lo, hi := int64(1<<62), int64(0)
		for range 1000 {
			n := d.pick(r)
			lo, hi = min(lo, n), max(hi, n)
		}
		if lo < tc.min || hi > tc.max {
			t.Errorf("parseSizeDist(%q) picked sizes in [%d, %d], want within [%d, %d]", tc.in, lo, hi, tc.min, tc.max)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ten []time.Duration
	for i := 1; i <= 10; i++ {
		ten = append(ten, time.Duration(i))
	}
	for _, tc := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{in: nil, p: 50, want: 0},
		{in: []time.Duration{7}, p: 99, want: 7},
		{in: ten, p: 50, want: 5},
		{in: ten, p: 90, want: 9},
		{in: ten, p: 99, want: 10},
		{in: ten, p: 100, want: 10},
		{in: ten, p: 1, want: 1},
	} {
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
		}
	}
}

func TestRateLimited(t *testing.T) {
	withRetry, err := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(250 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		err   error
		want  bool
		delay time.Duration
	}{
		{"RetryInfo", withRetry.Err(), true, 250 * time.Millisecond},
		{"no RetryInfo", status.Error(codes.ResourceExhausted, "message too large"), false, 0},
		{"other code", status.Error(codes.Unavailable, "down"), false, 0},
		{"not a status", errors.New("plain"), false, 0},
		{"nil", nil, false, 0},
	} {
		d, ok := rateLimited(tc.err)
		if ok != tc.want || d != tc.delay {
			t.Errorf("%s: rateLimited = %v, %v; want %v, %v", tc.name, d, ok, tc.delay, tc.want)
		}
	}
}

func TestReadMemoryOfThisProcess(t *testing.T) {
	rss, hwm, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || hwm < rss {
		t.Errorf("VmRSS %d, VmHWM %d: want 0 < VmRSS <= VmHWM", rss, hwm)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-users", "0"},
		{"-duration", "0s"},
		{"-mix", "bogus"},
		{"-size", "x"},
		{"-token-file", "a,b", "-subjects", "3"},
		{"-pid", "1", "-server-cmd", "greeterd"},
		{"extra"},
	} {
		if code := run(t.Context(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("load %v: exit status %d, want 2", args, code)
		}
	}
}

func TestReportFailsOnUnexpectedErrorsAndIntegrity(t *testing.T) {
	cfg := &config{duration: time.Second}
	creds := &credentials{tokens: []string{"t"}}
	for _, tc := range []struct {
		name string
		set  func(*result)
		want bool
	}{
		{"clean", func(*result) {}, true},
		{"rate-limited only", func(r *result) { r.kinds[kindUpload].rateLimited = 5 }, true},
		{"unexpected error", func(r *result) { r.kinds[kindHello].errors = map[codes.Code]int{codes.Unavailable: 1} }, false},
		{"integrity failure", func(r *result) { r.kinds[kindDownload].integrity = 1 }, false},
	} {
		res := &result{elapsed: time.Second}
		tc.set(res)
		if got := newReport(cfg, creds, res).Passed; got != tc.want {
			t.Errorf("%s: Passed = %v, want %v", tc.name, got, tc.want)
		}
	}
}
