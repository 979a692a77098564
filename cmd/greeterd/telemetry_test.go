package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestTraceSampleRatioChecked: a ratio outside [0, 1] is a usage error
// (exit 2) naming the flag; 0 and 1 start.
func TestTraceSampleRatioChecked(t *testing.T) {
	for _, v := range []string{"-0.1", "1.5", "NaN"} {
		code, stderr := runArgs(t, "--trace-sample-ratio="+v)
		if code != 2 || !strings.Contains(stderr, "--trace-sample-ratio must be between 0 and 1") {
			t.Errorf("--trace-sample-ratio=%s: exit %d, stderr %q; want 2 and a usage error naming the flag", v, code, stderr)
		}
	}
	for _, v := range []string{"0", "1"} {
		if code, stderr := runArgs(t, "--trace-sample-ratio="+v); code != 0 {
			t.Errorf("--trace-sample-ratio=%s: exit %d, stderr %q; want it accepted", v, code, stderr)
		}
	}
}

// TestLoggerWritesEverythingAtClose: the buffered logger loses nothing when
// its close func runs, and refuses an unknown format or level.
func TestLoggerWritesEverythingAtClose(t *testing.T) {
	var buf bytes.Buffer
	log, closeLog, err := newLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		log.Info("rpc", "method", "/Greeter/SayHello")
	}
	log.Debug("not at info")
	closeLog()
	if got := strings.Count(buf.String(), `"msg":"rpc"`); got != 1000 || strings.Contains(buf.String(), "not at info") {
		t.Errorf("after close: %d records of 1000, debug record present: %v", got, strings.Contains(buf.String(), "not at info"))
	}
	if _, _, err := newLogger(&buf, "xml", "info"); err == nil {
		t.Error("format xml accepted")
	}
	if _, _, err := newLogger(&buf, "text", "loud"); err == nil {
		t.Error("level loud accepted")
	}
}
