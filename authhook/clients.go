package authhook

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The connected clients, as an admin sees them: this node's read live
// from the hook's connection records, the cluster's through the store
// (roster.go); and the admin's kick, which disconnects one.

// Credential kinds a connected client proved who it is with
// (ClientInfo.Credential). A client that presented a certificate and a
// password (both required by its grant types) is "certificate+password",
// and so on with "certificate+token" and "certificate+directory".
const (
	CredentialPassword    = "password"    // the account password
	CredentialToken       = "token"       // a login token sent as the password
	CredentialDirectory   = "directory"   // a password the LDAP directory checked
	CredentialCertificate = "certificate" // a client certificate
)

// ErrNoSuchClient: no node has a connected client with that client ID.
var ErrNoSuchClient = errors.New("authhook: no such connected client")

// kickWait bounds how long Kick waits for the DISCONNECT to be written
// and the connection closed; a client whose socket blocks longer is
// closed all the same, only later.
const kickWait = 2 * time.Second

// ClientInfo is one connected client. Every field is what the client
// sent or how it authenticated; none is a secret.
type ClientInfo struct {
	ClientID string `json:"clientId"`
	Username string `json:"username"`
	// ProtocolVersion is as MQTT numbers it: 3 (3.1), 4 (3.1.1), 5.
	ProtocolVersion byte   `json:"protocolVersion"`
	RemoteAddr      string `json:"remoteAddr"`
	// ConnectedAt is when its CONNECT was accepted, in UTC.
	ConnectedAt time.Time `json:"connectedAt"`
	// Credential is one of the Credential* kinds (or a certificate with
	// another, joined by "+").
	Credential string `json:"credential"`
	Node       string `json:"node"`     // the node it is connected to (Options.NodeID)
	Listener   string `json:"listener"` // the listener's ID ("tcp", "tls", "ws")
}

// NodeInfo is a node whose clients a listing holds, and how fresh they
// are: a node publishes its list every Options.ClientsInterval.
type NodeInfo struct {
	ID        string    `json:"id"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Truncated: the node has more clients than its published list holds
	// (maxRecordBytes); ask that node itself (scope node) for all.
	Truncated bool `json:"truncated"`
}

// ClientList is a listing of connected clients, sorted by username then
// client ID, and the nodes it covers, sorted by ID.
type ClientList struct {
	Clients []ClientInfo `json:"clients"`
	Nodes   []NodeInfo   `json:"nodes"`
}

// credential names how p proved who the client is.
func (p proof) credential() string {
	var kind string
	switch {
	case p.tokenID != "":
		kind = CredentialToken
	case p.directory:
		kind = CredentialDirectory
	case p.byPassword:
		kind = CredentialPassword
	}
	switch {
	case p.certFP == "":
		return kind
	case kind == "":
		return CredentialCertificate
	}
	return CredentialCertificate + "+" + kind
}

// connected reports whether c is a live connection: CONNACK sent, not
// closed, not revoked (offline persistent sessions are known too).
func (c *conn) connected() bool {
	return c.live.Load() && !c.revoked.Load() && !c.cl.Closed()
}

// info is c as a listing shows it.
func (h *Hook) info(c *conn) ClientInfo {
	return ClientInfo{
		ClientID: c.clientID, Username: c.username, ProtocolVersion: c.protocol, RemoteAddr: c.remote,
		ConnectedAt: c.connectedAt.UTC(), Credential: c.proof.credential(), Node: h.opts.NodeID, Listener: c.listener,
	}
}

// Clients returns this node's connected clients, sorted by username then
// client ID. It ranges over the connection records without taking the
// hook's lock, so it never holds up a CONNECT or an ACL check.
func (h *Hook) Clients() []ClientInfo {
	var out []ClientInfo
	h.conns.Range(func(_, v any) bool {
		if c := v.(*conn); c.connected() {
			out = append(out, h.info(c))
		}
		return true
	})
	sortClients(out)
	return out
}

// sortClients orders a listing by username, then client ID.
func sortClients(cs []ClientInfo) {
	slices.SortFunc(cs, func(a, b ClientInfo) int {
		return cmp.Or(cmp.Compare(a.Username, b.Username), cmp.Compare(a.ClientID, b.ClientID), cmp.Compare(a.Node, b.Node))
	})
}

// ListClients returns this node's connected clients, or with cluster the
// connected clients of every node whose list in the store is fresh
// (roster.go): this node's read live, the others' as they last
// published them.
func (h *Hook) ListClients(ctx context.Context, cluster bool) (ClientList, error) {
	local := ClientList{Clients: h.Clients(), Nodes: []NodeInfo{{ID: h.opts.NodeID, UpdatedAt: time.Now().UTC()}}}
	if !cluster {
		return local, nil
	}
	others, err := h.otherNodes(ctx)
	if err != nil {
		return ClientList{}, err
	}
	for _, r := range others {
		local.Clients = append(local.Clients, r.Clients...)
		local.Nodes = append(local.Nodes, NodeInfo{ID: r.Node, UpdatedAt: r.UpdatedAt, Truncated: r.Truncated})
	}
	sortClients(local.Clients)
	slices.SortFunc(local.Nodes, func(a, b NodeInfo) int { return cmp.Compare(a.ID, b.ID) })
	return local, nil
}

// KickClient disconnects the client with clientID: at once when it is
// connected to this node, else by asking the node whose published list
// holds it (roster.go), which disconnects it as soon as the store's change
// feed tells it. ErrNoSuchClient when no node lists it.
func (h *Hook) KickClient(ctx context.Context, clientID string) error {
	if h.kickLocal(clientID) {
		return nil
	}
	return h.kickRemote(ctx, clientID)
}

// kickLocal disconnects this node's connected client with clientID, as
// an administrative action (MQTT 5: DISCONNECT 0x98). It is only a
// disconnect: the client may reconnect, resume a persistent session, and
// its will is published as for any connection the server closed (if its
// permissions allow it: OnWill). It reports whether there was one.
func (h *Hook) kickLocal(clientID string) bool {
	srv := h.server.Load()
	if srv == nil {
		return false
	}
	var found *conn
	h.conns.Range(func(_, v any) bool {
		if c := v.(*conn); c.clientID == clientID && c.connected() {
			found = c
			return false
		}
		return true
	})
	if found == nil {
		return false
	}
	h.log.Info("mqtt client disconnected by an administrator", "user", found.username, "client_id", found.clientID)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.DisconnectClient(found.cl, packets.ErrAdministrativeAction)
	}()
	select {
	case <-done:
	case <-time.After(kickWait):
	}
	h.clientsChanged()
	return true
}
