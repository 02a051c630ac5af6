package authhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// The cluster's connected clients go through the store. Each node
// publishes its own list as the setting clients/node/<node ID>, after its
// clients change (debounced) and every Options.ClientsInterval, and
// deletes it when it stops; a listing of the cluster reads the others'
// and leaves out those not refreshed for staleIntervals intervals (a node
// that died). A kick of a client on another node is the setting
// clients/kick/<node ID>/<SHA-256 of the client ID>: the owning node sees
// it on the change feed, disconnects the client and deletes it. These
// settings are the running nodes' state, not the model: backups leave
// them out and restores keep them (store.RuntimeSettings). A client ID or
// username is never part of a key: only its hash, and node IDs, which
// the operator sets (ValidNodeID).

// Settings of the roster; clientsPrefix is one of store.RuntimeSettings.
const (
	clientsPrefix = "clients/"
	nodePrefix    = clientsPrefix + "node/"
	kickPrefix    = clientsPrefix + "kick/"
)

// DefaultClientsInterval is Options.ClientsInterval's default.
const DefaultClientsInterval = 10 * time.Second

const (
	// staleIntervals: a node list older than this many intervals is left
	// out of cluster listings (its node stopped without deleting it).
	staleIntervals = 3
	// goneAfter: a node list this old is deleted by any node, with the
	// kick requests addressed to its node.
	goneAfter = time.Hour
	// kickMaxAge: a kick request older than this is deleted unheeded, so
	// a node restarted under the same ID never kicks a client that
	// connected after the request was made.
	kickMaxAge = time.Minute
	// clientsDebounce: a burst of connects and disconnects is published
	// once, this long after the first.
	clientsDebounce = time.Second
	// maxRecordBytes bounds a node's published list: client IDs are the
	// clients' to choose (up to 64 KiB each). A node with more lists the
	// first clients in order and says it is truncated.
	maxRecordBytes = 1 << 20
	// maxNodeIDLen bounds a node ID.
	maxNodeIDLen = 64
	// sweepEvery: every this many intervals a node deletes lists and
	// kick requests of nodes gone for goneAfter.
	sweepEvery = 6
)

// nodeRecord is a node's published list of connected clients.
type nodeRecord struct {
	Node      string       `json:"node"`
	UpdatedAt time.Time    `json:"updatedAt"`
	Truncated bool         `json:"truncated"`
	Clients   []ClientInfo `json:"clients"`
}

// kickRequest asks a node to disconnect one of its clients.
type kickRequest struct {
	ClientID string    `json:"clientId"`
	At       time.Time `json:"at"`
	From     string    `json:"from"` // the node that asked
}

// ValidNodeID checks a node ID: 1 to 64 ASCII letters, digits, '.', '_'
// or '-', so that it is a plain part of a store key and a log line.
func ValidNodeID(id string) error {
	if id == "" || len(id) > maxNodeIDLen {
		return fmt.Errorf("node ID must be 1 to %d characters, got %d", maxNodeIDLen, len(id))
	}
	for _, r := range id {
		if !nodeIDChar(r) {
			return fmt.Errorf("node ID %q: only ASCII letters, digits, '.', '_' and '-' are allowed", id)
		}
	}
	return nil
}

func nodeIDChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// kickKey is the setting asking node to disconnect clientID.
func kickKey(node, clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return kickPrefix + node + "/" + hex.EncodeToString(sum[:])
}

// clientsChanged tells the roster to publish this node's list soon. It
// runs on every CONNECT and disconnect, so it signals the roster only
// once per debounce period (rosterDue): a send to a goroutine parked in
// select wakes it, and a wake-up per connect and per disconnect, each
// finding a debounce already pending, was a quarter of the auth hook's
// CPU per connect cycle (issue 21, BenchmarkConnectLoopback).
func (h *Hook) clientsChanged() {
	if h.rosterSignal == nil || h.rosterDue.Load() || !h.rosterDue.CompareAndSwap(false, true) {
		return
	}
	select {
	case h.rosterSignal <- struct{}{}:
	default:
	}
}

// noticeRoster passes a change-feed event that concerns the roster to its
// goroutine: a kick request for this node, or a reset (then it looks for
// requests it missed). It never blocks the feed: a request that does not
// fit is found by the next sweep.
func (h *Hook) noticeRoster(ev store.Event) {
	if h.kicks == nil {
		return
	}
	var key string
	switch {
	case ev.Kind == store.KindSetting && ev.Op == store.OpPut && strings.HasPrefix(ev.ID, kickPrefix+h.opts.NodeID+"/"):
		key = ev.ID
	case ev.Kind == store.KindReset:
		key = "" // sweep this node's requests
	default:
		return
	}
	select {
	case h.kicks <- key:
	default:
	}
}

// roster publishes this node's list and carries out kick requests until
// the hook stops; then it deletes the list.
func (h *Hook) roster() {
	defer close(h.rosterDone)
	h.dropKicks() // left from an earlier run under this node ID
	h.publish()
	tick := time.NewTicker(h.opts.ClientsInterval)
	defer tick.Stop()
	var debounce <-chan time.Time
	for n := 1; ; n++ {
		select {
		case <-h.ctx.Done():
			h.unpublish()
			return
		case <-h.rosterSignal:
			if debounce == nil {
				debounce = time.After(clientsDebounce)
			}
		case <-debounce:
			debounce = nil
			h.rosterPublishing()
			h.publish()
		case key := <-h.kicks:
			if key == "" {
				h.kickSweep()
			} else {
				h.consumeKick(key)
			}
		case <-tick.C:
			h.publish()
			if n%sweepEvery == 0 {
				h.kickSweep()
				h.collectGone()
			}
		}
	}
}

// rosterPublishing ends the debounce period: a change from now on
// signals again. It is cleared before publish reads the list, so a
// change is either in the published list or signals a new period.
func (h *Hook) rosterPublishing() { h.rosterDue.Store(false) }

// publish writes this node's list to the store. A failure (store down)
// is logged once per outage; the next interval tries again.
func (h *Hook) publish() {
	raw, err := json.Marshal(boundedRecord(nodeRecord{Node: h.opts.NodeID, UpdatedAt: time.Now().UTC(), Clients: h.Clients()}))
	if err == nil {
		err = h.st.PutSetting(h.ctx, nodePrefix+h.opts.NodeID, raw)
	}
	switch {
	case err == nil:
		h.rosterFailing = false
	case h.ctx.Err() != nil:
	case !h.rosterFailing:
		h.rosterFailing = true
		h.log.Warn("cannot publish this node's connected clients; cluster listings miss them until the store is back", "err", err)
	}
}

// boundedRecord cuts r's clients to what fits in maxRecordBytes.
func boundedRecord(r nodeRecord) nodeRecord {
	size := 256 // the record's other fields
	for i, c := range r.Clients {
		size += len(c.ClientID) + len(c.Username) + len(c.RemoteAddr) + len(c.Node) + len(c.Listener) + 192
		if size > maxRecordBytes {
			r.Clients, r.Truncated = r.Clients[:i], true
			break
		}
	}
	return r
}

// unpublish deletes this node's list as it stops, so listings leave it
// out at once; the hook's context is done by then.
func (h *Hook) unpublish() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 2*time.Second)
	defer cancel()
	if err := h.st.DeleteSetting(ctx, nodePrefix+h.opts.NodeID); err != nil && !errors.Is(err, store.ErrNotFound) {
		h.log.Debug("cannot delete this node's connected clients from the store", "err", err)
	}
}

// otherNodes returns the fresh lists of the other nodes.
func (h *Hook) otherNodes(ctx context.Context) ([]nodeRecord, error) {
	if h.kicks == nil {
		return nil, nil // no node ID: this node is all it knows
	}
	keys, err := h.st.SettingKeys(ctx, nodePrefix)
	if err != nil {
		return nil, err
	}
	oldest := time.Now().Add(-staleIntervals * h.opts.ClientsInterval)
	var out []nodeRecord
	for _, k := range keys {
		node := strings.TrimPrefix(k, nodePrefix)
		if node == h.opts.NodeID {
			continue
		}
		r, err := h.readRecord(ctx, k)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		case r.Node == node && r.UpdatedAt.After(oldest):
			out = append(out, r)
		}
	}
	return out, nil
}

// readRecord reads one node's list; a record that does not decode reads
// as absent.
func (h *Hook) readRecord(ctx context.Context, key string) (nodeRecord, error) {
	raw, err := h.st.Setting(ctx, key)
	if err != nil {
		return nodeRecord{}, err
	}
	var r nodeRecord
	if json.Unmarshal(raw, &r) != nil {
		return nodeRecord{}, store.ErrNotFound
	}
	return r, nil
}

// kickRemote asks the node whose fresh list holds clientID to disconnect
// it.
func (h *Hook) kickRemote(ctx context.Context, clientID string) error {
	others, err := h.otherNodes(ctx)
	if err != nil {
		return err
	}
	for _, r := range others {
		for _, c := range r.Clients {
			if c.ClientID != clientID {
				continue
			}
			raw, err := json.Marshal(kickRequest{ClientID: clientID, At: time.Now().UTC(), From: h.opts.NodeID})
			if err != nil {
				return err
			}
			if err := h.st.PutSetting(ctx, kickKey(r.Node, clientID), raw); err != nil {
				return err
			}
			h.log.Info("mqtt client disconnect requested from its node", "user", c.Username, "client_id", clientID, "node", r.Node)
			return nil
		}
	}
	return ErrNoSuchClient
}

// consumeKick carries out the kick request under key, if it is this
// node's, well-formed and fresh, and deletes it.
func (h *Hook) consumeKick(key string) {
	raw, err := h.st.Setting(h.ctx, key)
	if err != nil {
		return // gone (done), or the store is down: the next sweep retries
	}
	var req kickRequest
	if json.Unmarshal(raw, &req) == nil && kickKey(h.opts.NodeID, req.ClientID) == key && time.Since(req.At) < kickMaxAge {
		if !h.kickLocal(req.ClientID) {
			h.log.Info("mqtt client to disconnect is no longer connected", "client_id", req.ClientID, "from", req.From)
		}
	}
	if err := h.st.DeleteSetting(h.ctx, key); err != nil && !errors.Is(err, store.ErrNotFound) {
		h.log.Debug("cannot delete a done kick request", "err", err)
	}
}

// kickSweep carries out the kick requests for this node that the change
// feed did not deliver (a reset, a full queue).
func (h *Hook) kickSweep() {
	keys, err := h.st.SettingKeys(h.ctx, kickPrefix+h.opts.NodeID+"/")
	if err != nil {
		return
	}
	for _, k := range keys {
		h.consumeKick(k)
	}
}

// dropKicks deletes the kick requests for this node ID unheeded: at
// start, none of them is about a client connected now.
func (h *Hook) dropKicks() {
	keys, err := h.st.SettingKeys(h.ctx, kickPrefix+h.opts.NodeID+"/")
	if err != nil {
		return
	}
	for _, k := range keys {
		_ = h.st.DeleteSetting(h.ctx, k)
	}
}

// collectGone deletes the lists of nodes gone for goneAfter and the kick
// requests addressed to nodes without a list: with node IDs that change
// at every start (the default), they would otherwise pile up.
func (h *Hook) collectGone() {
	keys, err := h.st.SettingKeys(h.ctx, clientsPrefix)
	if err != nil {
		return
	}
	live := map[string]bool{h.opts.NodeID: true}
	var kicks []string
	for _, k := range keys {
		if kick, ok := strings.CutPrefix(k, kickPrefix); ok {
			kicks = append(kicks, kick)
			continue
		}
		node, ok := strings.CutPrefix(k, nodePrefix)
		if !ok || node == h.opts.NodeID {
			continue
		}
		r, err := h.readRecord(h.ctx, k)
		switch {
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return // the store is down: never take a node for gone then
		case err == nil && time.Since(r.UpdatedAt) < goneAfter:
			live[node] = true
		default:
			_ = h.st.DeleteSetting(h.ctx, k)
		}
	}
	for _, kick := range kicks {
		if node, _, _ := strings.Cut(kick, "/"); !live[node] {
			_ = h.st.DeleteSetting(h.ctx, kickPrefix+kick)
		}
	}
}
