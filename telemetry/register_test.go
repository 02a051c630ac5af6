package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRegisterCollectorSharesOneCollector: a second component registering
// the same metric on the registry gets the first one's collector, so both
// count into one series.
func TestRegisterCollectorSharesOneCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "warden_test_total", Help: "A test counter."}
	first, err := RegisterCollector(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second, err := RegisterCollector(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	first.Inc()
	second.Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetMetric()[0].GetCounter().GetValue() != 2 {
		t.Fatalf("gathered %v, want one counter at 2", mfs)
	}
}

// TestRegisterCollectorRefusesAnotherShape: a collector of another type
// under a registered name is an error, not a silent second series.
func TestRegisterCollectorRefusesAnotherShape(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := RegisterCollector(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_test_total", Help: "A test counter."})); err != nil {
		t.Fatal(err)
	}
	if _, err := RegisterCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_test_total", Help: "A test counter."}, []string{"kind"})); err == nil {
		t.Fatal("a counter vector under a plain counter's name was registered")
	}
}
