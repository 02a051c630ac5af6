package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"
)

// Result is one run of one scenario: what the table shows and what
// --json writes. The summarize command reads these files back.
type Result struct {
	// Tool is always "warden-bench", so summarize can skip foreign JSON.
	Tool string `json:"tool"`
	// Scenario is the scenario run (connect, pubsub, ...).
	Scenario string `json:"scenario"`
	// Name identifies the case across runs (--name; default: the
	// scenario), e.g. "pubsub-qos1" when the same scenario runs with
	// different settings.
	Name string `json:"name"`
	// Label identifies the broker under test (--label; default: the
	// address), e.g. "warden" or "mosquitto".
	Label    string    `json:"label"`
	Addr     string    `json:"addr"`
	Started  time.Time `json:"started"`
	ElapsedS float64   `json:"elapsed_s"`
	// Complete is false when the run failed or --timeout cut it short;
	// its figures are then partial.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
	// Params are the flags the run used (the password excluded).
	Params  map[string]string `json:"params"`
	Metrics []Metric          `json:"metrics"`
	// Reasons counts the CONNACK reason codes of refused CONNECTs (hex
	// string: count), to tell "bad password" from "server busy".
	Reasons map[string]uint64 `json:"connack_reasons,omitempty"`
	// Notes explain figures a reader could misread.
	Notes []string `json:"notes,omitempty"`
}

// Metric is one figure of a run.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// add appends a figure; NaN and infinities (a division by zero when
// nothing happened) are stored as 0.
func (r *Result) add(name, unit string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: v, Unit: unit})
}

// Metric returns the value of the named figure.
func (r *Result) Metric(name string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

// note adds an explanation to the run's notes.
func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// refusal counts one refused CONNECT by reason code.
func (r *Result) refusal(code byte, n uint64) {
	if n == 0 {
		return
	}
	if r.Reasons == nil {
		r.Reasons = map[string]uint64{}
	}
	r.Reasons[fmt.Sprintf("0x%02x", code)] += n
}

// addUsage adds a meter's figures under prefix ("broker" or "client"),
// with the CPU time per unit of work when per (e.g. "delivery") is set.
func (r *Result) addUsage(prefix string, u procUsage, per string, work float64) {
	if u.err != nil {
		r.note("%s: /proc not readable, CPU and memory figures missing: %v", prefix, u.err)
		return
	}
	r.add(prefix+"_cpu_s", "s", u.cpu.Seconds())
	r.add(prefix+"_cpu_pct", "%", 100*u.cpu.Seconds()/u.wall.Seconds())
	if per != "" && work > 0 {
		r.add(prefix+"_cpu_us_per_"+per, "µs", float64(u.cpu.Microseconds())/work)
	}
	if prefix == "broker" {
		// What the case itself took: a broker that starts a case holding
		// memory from an earlier one shows a high maximum either way.
		r.add("broker_rss_before_mib", "MiB", float64(u.startKiB)/1024)
		r.add("broker_rss_max_mib", "MiB", float64(u.maxKiB)/1024)
		r.add("broker_rss_growth_mib", "MiB", float64(u.maxKiB-u.startKiB)/1024)
	}
}

// printTable writes the run as a two-column table.
func (r *Result) printTable(w io.Writer) {
	fmt.Fprintf(w, "%s (%s) against %s [%s]", r.Name, r.Scenario, r.Addr, r.Label)
	if !r.Complete {
		fmt.Fprintf(w, " INCOMPLETE: %s", r.Error)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, m := range r.Metrics {
		fmt.Fprintf(tw, "  %s\t%s\t %s\t\n", m.Name, formatValue(m.Value), m.Unit)
	}
	_ = tw.Flush()
	if len(r.Reasons) > 0 {
		codes := make([]string, 0, len(r.Reasons))
		for c := range r.Reasons {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		fmt.Fprint(w, "  refused CONNACK reason codes:")
		for _, c := range codes {
			fmt.Fprintf(w, " %s×%d", c, r.Reasons[c])
		}
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// writeJSON writes the run to path, indented.
func (r *Result) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// readResult reads a file written by writeJSON.
func readResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Tool != toolName {
		return nil, fmt.Errorf("%s: not a warden-bench result", path)
	}
	return &r, nil
}

// formatValue prints counts as integers and rates and latencies with
// three to four significant digits.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatInt(int64(v), 10)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}
