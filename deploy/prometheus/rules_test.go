// Package prometheus holds greeterd's Prometheus alerting rules
// (greeter-alerts.yml) and their promtool unit tests
// (greeter-alerts.test.yml). This test runs both under go test ./..., so a
// rule that does not parse, or that no longer fires or stays quiet as its
// tests say, fails the build.
package prometheus

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/greeter/greeter/internal/sysdeps"
)

const (
	rulesFile = "greeter-alerts.yml"
	testsFile = "greeter-alerts.test.yml"
)

// promtool returns the path of promtool, failing the test when it is
// missing: these checks are part of the suite, not optional.
func promtool(t *testing.T) string {
	t.Helper()
	return sysdeps.LookPath(t, "promtool", "prometheus")
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestCheckRules: promtool check rules accepts the rules file and finds
// every alert in it.
func TestCheckRules(t *testing.T) {
	out := run(t, "check", "rules", rulesFile)
	if want := len(alertNames(t)); !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", want)) {
		t.Errorf("promtool check rules: %s\nwant SUCCESS with %d rules", out, want)
	}
}

// TestRuleUnitTests runs the promtool unit tests of the rules.
func TestRuleUnitTests(t *testing.T) {
	run(t, "test", "rules", testsFile)
}

// TestEveryAlertIsTested: each alert has at least one test case where it
// fires and one where it must not.
func TestEveryAlertIsTested(t *testing.T) {
	raw, err := os.ReadFile(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, m := range regexp.MustCompile(`alertname: (\S+)\s*\n\s*exp_alerts:(.*)`).FindAllStringSubmatch(string(raw), -1) {
		if strings.TrimSpace(m[2]) == "[]" {
			quiet[m[1]] = true
		} else {
			firing[m[1]] = true
		}
	}
	for _, name := range alertNames(t) {
		if !firing[name] {
			t.Errorf("%s has no test case where it fires", name)
		}
		if !quiet[name] {
			t.Errorf("%s has no test case where it stays quiet (exp_alerts: [])", name)
		}
	}
}

func alertNames(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(raw), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("%s defines no alert", rulesFile)
	}
	return names
}
