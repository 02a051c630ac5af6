package admin

import (
	"context"
	"net/http"

	"github.com/warden-mqtt/warden/authhook"
)

// ClientDirectory lists and disconnects the connected MQTT clients: the
// auth hook (authhook.Hook), which keeps a record of each and publishes
// this node's to the store for the others.
type ClientDirectory interface {
	// ListClients returns this node's connected clients, or with cluster
	// every node's.
	ListClients(ctx context.Context, cluster bool) (authhook.ClientList, error)
	// KickClient disconnects the client with the ID, here or through its
	// node; authhook.ErrNoSuchClient when no node has it.
	KickClient(ctx context.Context, clientID string) error
}

// errNoClients answers the connected-clients routes of a node without
// an auth hook (--insecure-no-auth): it has no record of its clients.
var errNoClients = errorf(http.StatusServiceUnavailable, "connected clients are not known on this node: it runs without authentication")

// registerClients serves /api/clients: the connected MQTT clients, this
// node's or the cluster's, and the admin's kick.
func (s *Server) registerClients() {
	s.handle("GET /api/clients", permitted, s.listClients)
	s.handle("DELETE /api/clients/{clientId}", permitted, s.kickClient)
}

// listClients answers GET /api/clients?scope=node|cluster&username=NAME.
func (s *Server) listClients(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if s.opts.Clients == nil {
		return errNoClients
	}
	q := r.URL.Query()
	var cluster bool
	switch q.Get("scope") {
	case "", "node":
	case "cluster":
		cluster = true
	default:
		return errorf(http.StatusBadRequest, "scope must be node or cluster")
	}
	list, err := s.opts.Clients.ListClients(r.Context(), cluster)
	if err != nil {
		return err
	}
	if q.Has("username") {
		name := q.Get("username")
		kept := list.Clients[:0]
		for _, c := range list.Clients {
			if c.Username == name {
				kept = append(kept, c)
			}
		}
		list.Clients = kept
	}
	if list.Clients == nil {
		list.Clients = []authhook.ClientInfo{}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// kickClient answers DELETE /api/clients/{clientId}: 204 once the client
// is disconnected (on this node) or its node is asked to (another node).
func (s *Server) kickClient(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if s.opts.Clients == nil {
		return errNoClients
	}
	if err := s.opts.Clients.KickClient(r.Context(), r.PathValue("clientId")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
