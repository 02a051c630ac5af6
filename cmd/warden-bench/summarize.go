package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// ratioFlag collects repeated --ratio A/B flags.
type ratioFlag [][2]string

func (f *ratioFlag) String() string {
	var s []string
	for _, r := range *f {
		s = append(s, r[0]+"/"+r[1])
	}
	return strings.Join(s, ",")
}

func (f *ratioFlag) Set(v string) error {
	a, b, ok := strings.Cut(v, "/")
	if !ok || a == "" || b == "" {
		return errors.New("want LABEL/LABEL, e.g. warden/mosquitto")
	}
	*f = append(*f, [2]string{a, b})
	return nil
}

// target is a --target CASE.METRIC<=VALUE (or >=): a figure a summary
// shows next to each broker's median, met or not.
type target struct {
	Case   string  `json:"case"`
	Metric string  `json:"metric"`
	Op     string  `json:"op"` // "<=" or ">="
	Value  float64 `json:"value"`
}

// targetFlag collects repeated --target flags.
type targetFlag []target

func (f *targetFlag) String() string {
	var s []string
	for _, t := range *f {
		s = append(s, fmt.Sprintf("%s.%s%s%g", t.Case, t.Metric, t.Op, t.Value))
	}
	return strings.Join(s, ",")
}

func (f *targetFlag) Set(v string) error {
	bad := errors.New("want CASE.METRIC<=VALUE or CASE.METRIC>=VALUE, e.g. idle.broker_rss_per_client_kib<=16")
	op := "<="
	name, val, ok := strings.Cut(v, op)
	if !ok {
		op = ">="
		if name, val, ok = strings.Cut(v, op); !ok {
			return bad
		}
	}
	c, m, ok := strings.Cut(name, ".")
	x, err := strconv.ParseFloat(val, 64)
	if !ok || c == "" || m == "" || err != nil {
		return bad
	}
	*f = append(*f, target{Case: c, Metric: m, Op: op, Value: x})
	return nil
}

// met reports whether v meets the target.
func (t target) met(v float64) bool {
	if t.Op == "<=" {
		return v <= t.Value
	}
	return v >= t.Value
}

// summaryCase is one case (--name) of a summary: the median of each
// figure per broker label, and the ratios asked for.
type summaryCase struct {
	Name     string                        `json:"name"`
	Scenario string                        `json:"scenario"`
	Runs     map[string]int                `json:"runs"`
	Skipped  map[string]int                `json:"incomplete_runs_skipped,omitempty"`
	Metrics  []string                      `json:"metrics"`
	Medians  map[string]map[string]float64 `json:"medians"`
	Ratios   map[string]map[string]float64 `json:"ratios,omitempty"`
	// Targets are the --target figures of this case, each with whether
	// every label's median meets it.
	Targets []targetResult `json:"targets,omitempty"`
}

// targetResult is a target and, per label, whether its median meets it.
type targetResult struct {
	target
	Met map[string]bool `json:"met"`
}

// summarize reads result files written with --json and prints, for each
// case, every figure's median per broker and the ratios asked for. Runs
// that did not complete are left out (and counted).
func summarize(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("warden-bench summarize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	labelsFlag := fs.String("labels", "", "comma-separated broker labels, in column order (default: in the order first seen)")
	var ratios ratioFlag
	fs.Var(&ratios, "ratio", "add a column with the ratio of two labels' medians, e.g. warden/mosquitto (repeatable)")
	var targets targetFlag
	fs.Var(&targets, "target", "show a figure's target under its case, met or not, e.g. idle.broker_rss_per_client_kib<=16 (repeatable)")
	jsonOut := fs.String("json", "", "also write the medians and ratios as JSON to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "warden-bench summarize: no result files given")
		return exitUsage
	}

	var labels []string
	if *labelsFlag != "" {
		labels = strings.Split(*labelsFlag, ",")
	}
	var cases []*summaryCase
	byName := map[string]*summaryCase{}
	values := map[string]map[string]map[string][]float64{} // case → label → metric → values
	for _, path := range fs.Args() {
		r, err := readResult(path)
		if err != nil {
			fmt.Fprintf(stderr, "warden-bench summarize: %v\n", err)
			return exitFail
		}
		c := byName[r.Name]
		if c == nil {
			c = &summaryCase{Name: r.Name, Scenario: r.Scenario, Runs: map[string]int{}, Skipped: map[string]int{},
				Medians: map[string]map[string]float64{}, Ratios: map[string]map[string]float64{}}
			byName[r.Name] = c
			cases = append(cases, c)
			values[r.Name] = map[string]map[string][]float64{}
		}
		if *labelsFlag == "" && !slices.Contains(labels, r.Label) {
			labels = append(labels, r.Label)
		}
		if !r.Complete {
			c.Skipped[r.Label]++
			continue
		}
		c.Runs[r.Label]++
		if values[r.Name][r.Label] == nil {
			values[r.Name][r.Label] = map[string][]float64{}
		}
		for _, m := range r.Metrics {
			if !slices.Contains(c.Metrics, m.Name) {
				c.Metrics = append(c.Metrics, m.Name)
			}
			values[r.Name][r.Label][m.Name] = append(values[r.Name][r.Label][m.Name], m.Value)
		}
	}

	for _, c := range cases {
		for label, ms := range values[c.Name] {
			c.Medians[label] = map[string]float64{}
			for m, vs := range ms {
				c.Medians[label][m] = median(vs)
			}
		}
		for _, rt := range ratios {
			a, b := c.Medians[rt[0]], c.Medians[rt[1]]
			if a == nil || b == nil {
				continue
			}
			key := rt[0] + "/" + rt[1]
			c.Ratios[key] = map[string]float64{}
			for _, m := range c.Metrics {
				va, okA := a[m]
				vb, okB := b[m]
				if okA && okB && vb != 0 {
					c.Ratios[key][m] = va / vb
				}
			}
		}
		for _, tg := range targets {
			if tg.Case != c.Name || !slices.Contains(c.Metrics, tg.Metric) {
				continue
			}
			tr := targetResult{target: tg, Met: map[string]bool{}}
			for label, m := range c.Medians {
				if v, ok := m[tg.Metric]; ok {
					tr.Met[label] = tg.met(v)
				}
			}
			c.Targets = append(c.Targets, tr)
		}
		printCase(stdout, c, labels, ratios)
	}

	if *jsonOut != "" {
		b, err := json.MarshalIndent(map[string]any{"tool": toolName, "labels": labels, "cases": cases}, "", "  ")
		if err == nil {
			err = os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "warden-bench summarize: %v\n", err)
			return exitFail
		}
	}
	return exitOK
}

// printCase prints one case as a table: a row per figure, a column per
// label (the median over its runs), then the ratio columns.
func printCase(w io.Writer, c *summaryCase, labels []string, ratios ratioFlag) {
	fmt.Fprintf(w, "\n== %s (%s): medians", c.Name, c.Scenario)
	for _, l := range labels {
		if n := c.Runs[l]; n > 0 {
			fmt.Fprintf(w, ", %s %d runs", l, n)
		}
	}
	for _, l := range sortedKeys(c.Skipped) {
		if c.Skipped[l] > 0 {
			fmt.Fprintf(w, ", %s %d INCOMPLETE runs left out", l, c.Skipped[l])
		}
	}
	fmt.Fprintln(w)
	var cols []string
	for _, l := range labels {
		if c.Medians[l] != nil {
			cols = append(cols, l)
		}
	}
	var rcols []string
	for _, rt := range ratios {
		if key := rt[0] + "/" + rt[1]; c.Ratios[key] != nil {
			rcols = append(rcols, key)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "metric\t")
	for _, l := range cols {
		fmt.Fprintf(tw, "%s\t", l)
	}
	for _, k := range rcols {
		fmt.Fprintf(tw, "%s\t", k)
	}
	fmt.Fprintln(tw)
	for _, m := range c.Metrics {
		fmt.Fprintf(tw, "%s\t", m)
		for _, l := range cols {
			if v, ok := c.Medians[l][m]; ok {
				fmt.Fprintf(tw, "%s\t", formatValue(v))
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		for _, k := range rcols {
			if v, ok := c.Ratios[k][m]; ok {
				fmt.Fprintf(tw, "%.2f\t", v)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	for _, tr := range c.Targets {
		op := map[string]string{"<=": "≤", ">=": "≥"}[tr.Op]
		var parts []string
		for _, l := range cols {
			v, ok := c.Medians[l][tr.Metric]
			if !ok {
				continue
			}
			verdict := "met"
			if !tr.Met[l] {
				verdict = "NOT met"
			}
			if tr.Value != 0 {
				verdict = fmt.Sprintf("%.2f× the target, %s", v/tr.Value, verdict)
			}
			parts = append(parts, fmt.Sprintf("%s %s (%s)", l, formatValue(v), verdict))
		}
		fmt.Fprintf(w, "target: %s %s %s: %s", tr.Metric, op, formatValue(tr.Value), strings.Join(parts, "; "))
		fmt.Fprintln(w)
	}
}

// median of vs (not empty); the mean of the middle two for an even count.
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
