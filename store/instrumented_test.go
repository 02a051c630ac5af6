package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// instrument wraps s on a fresh registry.
func instrument(t *testing.T, s store.Store, backend string) (*store.Instrumented, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	in, err := store.Instrument(s, backend, reg)
	if err != nil {
		t.Fatal(err)
	}
	return in, reg
}

// series returns the series name{labels} (label pairs as "k", "v", ...)
// gathered from g, nil when absent.
func series(t *testing.T, g prometheus.Gatherer, name string, labels ...string) *dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == labels[i] && l.GetValue() == labels[i+1] }) {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// TestInstrumentedContract: the wrapper passes the whole contract suite,
// so wrapping changes no behaviour.
func TestInstrumentedContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		in, _ := instrument(t, storetest.OpenBolt(t), "bolt")
		return in
	})
}

// TestInstrumentedRecordsLatencyErrorsAndRedisUp: on a real Redis, calls
// are timed by operation, answers such as not-found are not failures,
// and once Redis stops, the periodic ping drops warden_store_up to 0 and
// failed calls are counted as unavailable.
func TestInstrumentedRecordsLatencyErrorsAndRedisUp(t *testing.T) {
	t.Parallel()
	srv := storetest.StartRedis(t)
	in, reg := instrument(t, storetest.OpenRedis(t, storetest.URL(srv.URL)), "redis")
	ctx := t.Context()

	if _, err := in.CreateUser(ctx, store.User{Username: "metrics-user"}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.UserByUsername(ctx, "metrics-user"); err != nil {
		t.Fatal(err)
	}
	if _, err := in.UserByUsername(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserByUsername(nobody) = %v, want ErrNotFound", err)
	}
	if m := series(t, reg, "warden_store_operation_duration_seconds", "operation", "user_by_username"); m.GetHistogram().GetSampleCount() != 2 {
		t.Errorf("user_by_username observed %d times, want 2", m.GetHistogram().GetSampleCount())
	}
	if m := series(t, reg, "warden_store_operation_duration_seconds", "operation", "create_user"); m.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("create_user observed %d times, want 1", m.GetHistogram().GetSampleCount())
	}
	if m := series(t, reg, "warden_store_errors_total"); m != nil {
		t.Errorf("a not-found answer counted as a store error: %v", m)
	}
	if got := series(t, reg, "warden_store_up", "backend", "redis").GetGauge().GetValue(); got != 1 {
		t.Errorf("warden_store_up = %v before the outage, want 1", got)
	}

	mctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { in.MonitorPing(mctx, 20*time.Millisecond); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	srv.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for series(t, reg, "warden_store_up", "backend", "redis").GetGauge().GetValue() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("warden_store_up still 1 10 s after Redis stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := in.UserByUsername(ctx, "metrics-user"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("UserByUsername with Redis stopped = %v, want ErrUnavailable", err)
	}
	if got := series(t, reg, "warden_store_errors_total", "operation", "user_by_username", "kind", "unavailable").GetCounter().GetValue(); got != 1 {
		t.Errorf("unavailable user_by_username errors = %v, want 1", got)
	}
	if got := series(t, reg, "warden_store_errors_total", "operation", "ping", "kind", "unavailable").GetCounter().GetValue(); got < 1 {
		t.Errorf("unavailable ping errors = %v, want at least 1", got)
	}

	// Nothing but operation names, kinds and the backend in the labels.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "metrics-user") || strings.Contains(l.GetValue(), "nobody") {
					t.Errorf("%s has label %s=%q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestInstrumentRefusesASecondStoreOnOneRegistry: two stores' series on
// one registry would mix, so the second registration fails loudly.
func TestInstrumentRefusesASecondStoreOnOneRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := store.Instrument(storetest.OpenBolt(t), "bolt", reg); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Instrument(storetest.OpenBolt(t), "bolt", reg); err == nil {
		t.Fatal("a second store registered on the same registry")
	}
}
