package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

// registerRegistry serves /api/client-registry. register and status need
// no token: devices call them before they have any credential.
func (s *Server) registerRegistry() {
	s.handle("GET /api/client-registry", permitted, s.registryRequests)
	s.handle("POST /api/client-registry/register", public, s.countRegistry("register", s.registryRegister))
	s.handle("GET /api/client-registry/status", public, s.registryStatus)
	s.handle("POST /api/client-registry/open", permitted, s.countRegistry("open", s.registryOpen))
	s.handle("POST /api/client-registry/lock", permitted, s.countRegistry("lock", s.registryLock))
	s.handle("POST /api/client-registry/confirm", permitted, s.countRegistry("confirm", s.registryConfirm))
	s.handle("POST /api/client-registry/reject", permitted, s.countRegistry("reject", s.registryReject))
}

// registryRequestView is a row of GET /api/client-registry. Credentials
// (hashes, CSRs) never leave the server.
type registryRequestView struct {
	Timestamp      time.Time        `json:"timestamp"`
	Username       string           `json:"username"`
	CredentialType string           `json:"credentialType"`
	Roles          []string         `json:"roles"`
	Context        string           `json:"context"`
	Permissions    []acl.Permission `json:"permissions"`
	Granted        bool             `json:"granted"`
	Flow           string           `json:"flow"`
}

func (s *Server) registryRequests(w http.ResponseWriter, r *http.Request, _ *caller) error {
	reqs, err := s.registry.Requests(r.Context())
	if err != nil {
		return err
	}
	out := make([]registryRequestView, 0, len(reqs))
	for _, q := range reqs {
		v := registryRequestView{Timestamp: q.Timestamp, Username: q.Username, CredentialType: q.CredentialType,
			Roles: q.Roles, Context: q.Context, Permissions: q.Permissions, Granted: q.Granted, Flow: q.Flow}
		if v.Roles == nil {
			v.Roles = []string{}
		}
		if v.Permissions == nil {
			v.Permissions = []acl.Permission{}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type registerAnswer struct {
	Certificate string `json:"certificate,omitempty"`
	Status      string `json:"status"`
}

// registryRegister: 201 granted (with the certificate for a CSR), 202
// pending; errors as the contract lists (400, 409, 422, 423).
func (s *Server) registryRegister(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var req registry.Request
	if err := decode(w, r, &req); err != nil {
		return err
	}
	res, err := s.registry.Register(r.Context(), req)
	if err != nil {
		return err
	}
	if !res.Granted {
		writeJSON(w, http.StatusAccepted, registerAnswer{Status: "pending"})
		return nil
	}
	writeJSON(w, http.StatusCreated, registerAnswer{Status: "granted", Certificate: res.Certificate})
	return nil
}

func (s *Server) registryStatus(w http.ResponseWriter, r *http.Request, _ *caller) error {
	st, err := s.registry.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// maxOpenMillis bounds a requested duration before it becomes a
// time.Duration; Registry.Open caps it further at its MaxOpen.
const maxOpenMillis = int64(365 * 24 * time.Hour / time.Millisecond)

type openRequest struct {
	// Duration in milliseconds.
	Duration *int64 `json:"duration"`
}

// registryOpen opens the registry for duration ms (default 30 s, capped at
// the configured maximum); the body is optional.
func (s *Server) registryOpen(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req openRequest
	if err := decodeOptional(w, r, &req); err != nil {
		return err
	}
	var d time.Duration
	if req.Duration != nil {
		if *req.Duration <= 0 {
			return errorf(http.StatusBadRequest, "duration must be a positive number of milliseconds")
		}
		// A longer duration is capped (by Registry.Open), not refused;
		// clamping first keeps the conversion from overflowing.
		d = time.Duration(min(*req.Duration, maxOpenMillis)) * time.Millisecond
	}
	st, err := s.registry.Open(r.Context(), d)
	if err != nil {
		return err
	}
	s.log.Info("client registry opened", "until", time.UnixMilli(st.UnlockedUntil).UTC(), "by", c.user.Username)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) registryLock(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.registry.Lock(r.Context()); err != nil {
		return err
	}
	s.log.Info("client registry locked", "by", c.user.Username)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type confirmRequest struct {
	Username           string            `json:"username"`
	MQTTPublishPrefix  string            `json:"mqttPublishPrefix"`
	Roles              []string          `json:"roles"`
	GrantTypes         []store.GrantType `json:"grantTypes"`
	InitialPermissions []acl.Permission  `json:"initialPermissions"`
}

// registryConfirm grants a pending request: the user is created with the
// device's credential and what this call gives, nothing more, and only
// what the caller could grant itself (account.Service.CheckGrant).
func (s *Server) registryConfirm(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req confirmRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Username == "" {
		return errorf(http.StatusBadRequest, "username is required")
	}
	noteTarget(r, "username", req.Username)
	roles, err := s.accounts.CheckGrant(r.Context(), c.actor(r), account.Grant{
		MQTTPublishPrefix: req.MQTTPublishPrefix, GrantTypes: req.GrantTypes, Roles: req.Roles, Permissions: req.InitialPermissions,
	})
	if err != nil {
		return err
	}
	if _, err := s.registry.Confirm(r.Context(), req.Username, registry.Grant{
		MQTTPublishPrefix: req.MQTTPublishPrefix, Roles: roles, GrantTypes: req.GrantTypes, Permissions: req.InitialPermissions,
	}); err != nil {
		return err
	}
	s.log.Info("client registry request confirmed", "user", req.Username, "by", c.user.Username)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type rejectRequest struct {
	Username string `json:"username"`
}

// registryReject discards a pending request (registry.Reject): 204, 404
// when there is none, 409 when it was granted already.
func (s *Server) registryReject(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req rejectRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Username == "" {
		return errorf(http.StatusBadRequest, "username is required")
	}
	noteTarget(r, "username", req.Username)
	if err := s.registry.Reject(r.Context(), req.Username); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no request for this username")
		}
		return err
	}
	s.log.Info("client registry request rejected", "user", req.Username, "by", c.user.Username)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
