package webhook_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
)

// vmqCallers is how many of VerneMQ's pool connections call at once in
// the benchmark (vmq_webhooks.pool_max_connections defaults to 100).
const vmqCallers = 50

// BenchmarkVerneMQPublish: auth_on_publish decisions over HTTP/1.1
// keep-alive, 50 callers at once, against the handler on a real HTTP
// server and a real hook over bbolt (the user cached after the first
// call, as in steady state). Reports decisions/s and the p99 latency.
func BenchmarkVerneMQPublish(b *testing.B) {
	e := newVMQEnv(b, nil)
	e.addUser(b, "alice", "Alice-password-1", []acl.Permission{vmqPerm("a/{clientId}/#", acl.OpReadWrite)})
	body := vmqRequest(b, "auth_on_publish.json", map[string]any{"username": "alice", "client_id": "dev1", "topic": "a/dev1/temp"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: vmqCallers, MaxConnsPerHost: vmqCallers}}
	defer client.CloseIdleConnections()
	url := e.srv.URL + "/api/broker/auth/publish"

	call := func() error {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("vernemq-hook", "auth_on_publish")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || !bytes.Equal(answer, []byte("{\"result\":\"ok\"}\n"))) {
			b.Errorf("answer %d %q", resp.StatusCode, answer)
		}
		return err
	}
	if err := call(); err != nil { // warm the user cache
		b.Fatal(err)
	}

	var next atomic.Int64
	lat := make([][]time.Duration, vmqCallers)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for c := range vmqCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := call(); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "decisions/s")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}
