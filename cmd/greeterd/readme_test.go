package main

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryFlag keeps the configuration reference honest: a
// flag added without documentation fails the build.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var c serveConfig
	serveFlags(&c).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(string(readme), "`--"+f.Name+"`") {
			t.Errorf("README.md does not document --%s", f.Name)
		}
	})
}
