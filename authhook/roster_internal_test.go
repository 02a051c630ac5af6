package authhook

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/store"
)

// TestRosterSettingsAreRuntimeState: the roster's settings are among
// those backups leave out and restores keep (store.RuntimeSettings).
func TestRosterSettingsAreRuntimeState(t *testing.T) {
	t.Parallel()
	if !slices.Contains(store.RuntimeSettings(), clientsPrefix) {
		t.Fatalf("store.RuntimeSettings() = %q lacks %q: node lists and kick requests would go into backups", store.RuntimeSettings(), clientsPrefix)
	}
	for _, k := range []string{nodePrefix + "n1", kickKey("n1", "any/client id+#")} {
		if !strings.HasPrefix(k, clientsPrefix) {
			t.Errorf("roster key %q is not under %q", k, clientsPrefix)
		}
	}
}

// TestKickKeyHidesTheClientID: a kick request's key holds the node and
// a hash, never the client's own bytes, whatever they are.
func TestKickKeyHidesTheClientID(t *testing.T) {
	t.Parallel()
	id := "../../" + strings.Repeat("x", 70000)
	k := kickKey("node-a", id)
	if len(k) != len(kickPrefix)+len("node-a/")+64 || strings.Contains(k, "..") {
		t.Errorf("kick key %q (%d bytes) is not prefix, node and a SHA-256", k[:min(len(k), 80)], len(k))
	}
	if kickKey("node-a", id+"y") == k {
		t.Error("two client IDs share a kick key")
	}
}

// TestCredentialKinds: how each proof is named in a listing.
func TestCredentialKinds(t *testing.T) {
	t.Parallel()
	for want, p := range map[string]proof{
		"password":              {byPassword: true, pwVersion: 3},
		"token":                 {tokenID: "t1"},
		"directory":             {byPassword: true, directory: true},
		"certificate":           {certFP: "ab"},
		"certificate+password":  {certFP: "ab", byPassword: true},
		"certificate+token":     {certFP: "ab", tokenID: "t1"},
		"certificate+directory": {certFP: "ab", byPassword: true, directory: true},
	} {
		if got := p.credential(); got != want {
			t.Errorf("%+v: credential %q, want %q", p, got, want)
		}
	}
}

// TestNodeRecordIsBounded: a node with clients whose IDs are as long as
// MQTT allows publishes at most maxRecordBytes, says it is truncated, and
// keeps the first clients in order.
func TestNodeRecordIsBounded(t *testing.T) {
	t.Parallel()
	var clients []ClientInfo
	for i := range 40 {
		clients = append(clients, ClientInfo{ClientID: strings.Repeat(string(rune('a'+i%26)), 65535), Username: "u", ProtocolVersion: 5, Credential: "password"})
	}
	r := boundedRecord(nodeRecord{Node: "n", Clients: clients})
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > maxRecordBytes || !r.Truncated || len(r.Clients) == 0 || r.Clients[0].ClientID != clients[0].ClientID {
		t.Errorf("record of %d bytes, truncated %v, %d clients; want at most %d bytes, truncated, the first clients", len(raw), r.Truncated, len(r.Clients), maxRecordBytes)
	}
	small := boundedRecord(nodeRecord{Node: "n", Clients: clients[:3]})
	if small.Truncated || len(small.Clients) != 3 {
		t.Errorf("a small record was cut: truncated %v, %d clients", small.Truncated, len(small.Clients))
	}
}

// TestValidNodeID: node IDs are short plain names.
func TestValidNodeID(t *testing.T) {
	t.Parallel()
	for id, ok := range map[string]bool{
		"node-a": true, "edge_1.plant": true, strings.Repeat("n", 64): true,
		"": false, strings.Repeat("n", 65): false, "a/b": false, "a b": false, "nöde": false, "a*": false,
	} {
		if err := ValidNodeID(id); (err == nil) != ok {
			t.Errorf("ValidNodeID(%q) = %v, want ok %v", id, err, ok)
		}
	}
}

// TestClientsChangedSignalsOncePerPeriod: a burst of connects and
// disconnects wakes the roster once, not once each (issue 21: the
// wake-ups cost CONNECT CPU); once the debounce period ends
// (rosterPublishing), the next change signals again, so none is missed.
func TestClientsChangedSignalsOncePerPeriod(t *testing.T) {
	h := &Hook{rosterSignal: make(chan struct{}, 1)}
	for range 100 {
		h.clientsChanged()
	}
	if len(h.rosterSignal) != 1 {
		t.Fatalf("signals after a burst = %d, want 1", len(h.rosterSignal))
	}
	<-h.rosterSignal // the roster starts its debounce
	h.clientsChanged()
	if len(h.rosterSignal) != 0 {
		t.Fatal("a change within the period woke the roster again")
	}
	h.rosterPublishing()
	h.clientsChanged()
	if len(h.rosterSignal) != 1 {
		t.Fatal("a change after the period's publish did not signal")
	}
	(&Hook{}).clientsChanged() // no node ID: no roster, nothing to signal
}
