package e2e

import (
	"bufio"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The parts of a Grafana dashboard the test reads.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []dashVar `json:"list"`
	} `json:"templating"`
}

// dashVar is a dashboard (template) variable.
type dashVar struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Query json.RawMessage `json:"query"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // a collapsed row's panels
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// allPanels returns the panels, those inside rows included.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// queryString returns a variable's query, which newer Grafana versions
// store as {"query": "..."}.
func (v dashVar) queryString(t *testing.T) string {
	t.Helper()
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var obj struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &obj); err != nil {
		t.Errorf("dashboard variable %s: query %s: %v", v.Name, v.Query, err)
	}
	return obj.Query
}

// expandVars substitutes Grafana's $name, ${name} and [[name]] forms.
func expandVars(expr string, vars map[string]string) string {
	return regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`).ReplaceAllStringFunc(expr, func(m string) string {
		sub := regexp.MustCompile(`\w+`).FindString(strings.TrimLeft(m, "$[{"))
		if v, ok := vars[sub]; ok {
			return v
		}
		return m
	})
}

// exportedNames returns the metric names in a Prometheus exposition.
func exportedNames(exposition string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(exposition))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// metricNames returns the metric names a PromQL expression selects: the
// identifiers left after removing strings, label matchers, range and
// grouping clauses, function calls' names, keywords and numbers.
func metricNames(expr string) []string {
	for _, re := range []string{
		`"(?:[^"\\]|\\.)*"`, `'(?:[^'\\]|\\.)*'`, // strings
		`\{[^}]*\}`,  // label matchers
		`\[[^\]]*\]`, // ranges
		`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`,
		`\b[a-zA-Z_]\w*\s*\(`,                     // function names
		`(?:^|[^\w.])\d[\d.]*(?:[eE][+-]?\d+)?\b`, // numbers
	} {
		expr = regexp.MustCompile(re).ReplaceAllString(expr, " ")
	}
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true, "inf": true, "nan": true, "group_left": true, "group_right": true}
	var out []string
	for _, id := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`).FindAllString(expr, -1) {
		if !keywords[strings.ToLower(id)] && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// checkNames fails for every metric expr selects that greeterd does not
// export.
func checkNames(t *testing.T, where, expr string, exported map[string]bool) {
	t.Helper()
	names := metricNames(expr)
	if len(names) == 0 {
		t.Errorf("%s: selects no metric", where)
	}
	for _, n := range names {
		if !exported[n] {
			t.Errorf("%s: greeterd does not export %s", where, n)
		}
	}
}
