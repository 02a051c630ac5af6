package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// drainer is a server that stops gracefully: *http.Server and
// *broker.Broker.
type drainer interface {
	Shutdown(ctx context.Context) error
}

// shutdown stops what run started, all within timeout:
//  1. at once and side by side, the admin HTTP server and the MQTT broker
//     stop accepting; HTTP requests in flight finish and idle connections
//     close (http.Server.Shutdown), MQTT clients are told "server shutting
//     down" (v5 reason 0x8B) and disconnected (broker.Shutdown);
//  2. the store closes.
//
// The drain may use the timeout less a reserve (a tenth, at most 1 s) kept
// for the store, so a stuck HTTP client cannot leave a bolt file unclosed.
// A drain cut short by the timeout closes the remaining connections and
// makes the exit code exitFail, as does a store that fails to close.
// httpSrv is nil when the admin API is off.
func shutdown(timeout time.Duration, httpSrv *http.Server, mqtt drainer, s store.Store, log *slog.Logger) int {
	start := time.Now()
	reserve := min(timeout/10, time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(timeout-reserve))
	defer cancel()

	code := exitOK
	var wg sync.WaitGroup
	var httpErr, mqttErr error
	if httpSrv != nil {
		wg.Go(func() { httpErr = httpSrv.Shutdown(ctx) })
	}
	wg.Go(func() { mqttErr = mqtt.Shutdown(ctx) })
	wg.Wait()
	if httpErr != nil {
		// Requests still running past the deadline are cut.
		_ = httpSrv.Close()
		log.Error("admin HTTP shutdown", "err", httpErr)
		code = exitFail
	}
	if mqttErr != nil {
		log.Error("broker shutdown", "err", mqttErr)
		code = exitFail
	}

	if err := closeWithin(s, time.Until(start.Add(timeout))); err != nil {
		log.Error("shutdown failed", "err", err)
		return exitFail
	}
	if code != exitOK {
		return code
	}
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return exitOK
}
