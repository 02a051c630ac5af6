package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/store"
)

// telemetry is what GET /metrics and GET /readyz need from the wiring:
// one Prometheus registry for the whole process (not the global one, so a
// test that runs warden in-process starts from zero), the hook's metrics,
// and whether the MQTT listeners serve.
type telemetry struct {
	registry *prometheus.Registry
	hook     *authhook.Metrics
	// ctx is the process's run context: once it is done (a signal),
	// warden is shutting down and no longer ready for traffic.
	ctx    context.Context
	broker atomic.Pointer[broker.Broker]
}

// startTelemetry builds the registry (with the Go runtime and process
// collectors), wraps s so store calls are measured, and pings the store
// periodically until ctx is done, so warden_store_up follows Redis even
// when nothing else touches the store. kind is "bolt" or "redis".
func startTelemetry(ctx context.Context, s store.Store, kind string) (*telemetry, store.Store, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, nil, fmt.Errorf("metrics: %w", err)
		}
	}
	hook, err := authhook.NewMetrics(reg)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: %w", err)
	}
	measured, err := store.Instrument(s, kind, reg)
	if err != nil {
		return nil, nil, err
	}
	go measured.MonitorPing(ctx, store.DefaultPingInterval)
	return &telemetry{registry: reg, hook: hook, ctx: ctx}, measured, nil
}

// serving records that the MQTT listeners serve (the broker started).
func (t *telemetry) serving(b *broker.Broker) { t.broker.Store(b) }

// ready is GET /readyz's listener check: the MQTT broker started, and
// warden is not shutting down. The listeners are bound by broker.New, so
// a started broker accepts.
func (t *telemetry) ready() error {
	if t.ctx.Err() != nil {
		return errors.New("shutting down")
	}
	if t.broker.Load() == nil {
		return errors.New("mqtt listeners not started")
	}
	return nil
}
