package main

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// varying matches what differs between two failures of one cause: numbers,
// hex digests and ids, addresses.
var varying = regexp.MustCompile(`[0-9a-f]{16,}|\d+(\.\d+)*`)

// fail counts a failed operation under its reason: the operation, the
// CLI's exit code and the last line it wrote, with numbers and ids
// blanked, so that the causes can be told apart from the injected faults.
func (t *tally) fail(op string, code int, output string) {
	t.failed.Add(1)
	last := ""
	for line := range strings.Lines(output) {
		if l := strings.TrimSpace(line); l != "" {
			last = l
		}
	}
	if len(last) > 160 {
		last = last[:160] + "…"
	}
	reason := fmt.Sprintf("%s exit %d: %s", op, code, varying.ReplaceAllString(last, "#"))
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.reasons == nil {
		t.reasons = map[string]int{}
	}
	t.reasons[reason]++
}

// printReasons prints the most frequent reasons of the failed operations.
func (t *tally) printReasons() {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := slices.SortedFunc(maps.Keys(t.reasons), func(a, b string) int {
		return cmp.Or(cmp.Compare(t.reasons[b], t.reasons[a]), strings.Compare(a, b))
	})
	if len(keys) > 0 {
		fmt.Println("chaos: failed operations by reason (operation, exit code, the CLI's last line):")
	}
	for i, k := range keys {
		if i == 10 {
			fmt.Printf("chaos:   … and %d more reasons\n", len(keys)-i)
			break
		}
		fmt.Printf("chaos:   %5d × %s\n", t.reasons[k], k)
	}
}
