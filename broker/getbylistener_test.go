package broker

import (
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestGetByListenerWithWriters: Mochi's Clients.GetByListener (called by
// Server.Close for every listener) took the clients' read lock and then
// read Len, which takes it again; a client being added in between (a
// writer waiting) deadlocked both, and with them the shutdown. Readers and
// writers race here long enough for that interleaving to come up.
func TestGetByListenerWithWriters(t *testing.T) {
	cs := mqtt.NewClients()
	done := make(chan struct{})
	var wg sync.WaitGroup
	stop := time.Now().Add(time.Second)
	for w := range 2 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				cs.Add(&mqtt.Client{ID: strconv.Itoa(w) + "-" + strconv.Itoa(i%64)})
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				cs.GetByListener("tcp")
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("GetByListener and Add deadlocked")
	}
}
