package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// GET /api/access/check ("try a topic") answers whether a user or a role
// may read and write a topic, and which permission decides. The decision
// is the broker's: the same compiled matcher (acl.Explain over the
// acl.Compile the hook uses), the same placeholder binding, the same
// subscription coverage for a filter and, for a user's publish prefix,
// the hook's own PUBLISH rule (Options.Broker).

// PublishDecider is the embedded broker's PUBLISH decision
// (authhook.Hook.PublishTopic): topic with the publish prefix applied, and
// whether bound may write there.
type PublishDecider interface {
	PublishTopic(prefix string, bound *acl.Bound, topic string) (string, bool)
}

// maxClientIDLen bounds the clientId of an access check: the longest MQTT
// string.
const maxClientIDLen = 65535

func (s *Server) registerAccess() {
	s.handle("GET /api/access/check", permitted, s.checkAccess)
}

// accessSubject names who an access check is about.
type accessSubject struct {
	Kind string `json:"kind"` // "user" or "role"
	Name string `json:"name"`
}

// accessPermission is a permission an access decision rests on, with the
// role it comes from.
type accessPermission struct {
	ID        string `json:"id"`
	Resource  string `json:"resource"`
	Operation string `json:"operation"`
	Context   string `json:"context"`
	Role      string `json:"role"`   // the role's name
	RoleID    string `json:"roleId"` // and ID
}

// accessDecision is the answer for one operation. Permission is set
// exactly when Allowed; Reason exactly when not.
type accessDecision struct {
	Allowed    bool              `json:"allowed"`
	Permission *accessPermission `json:"permission,omitempty"`
	// Resolved is Permission's resource with the placeholders the subject
	// has values for replaced.
	Resolved      string             `json:"resolved,omitempty"`
	AlsoAllowedBy []accessPermission `json:"alsoAllowedBy,omitempty"`
	Reason        string             `json:"reason,omitempty"`
}

// accessAnswer is the body of GET /api/access/check.
type accessAnswer struct {
	Subject  accessSubject `json:"subject"`
	Topic    string        `json:"topic"`
	Context  string        `json:"context"`
	Filter   bool          `json:"filter"`
	ClientID string        `json:"clientId,omitempty"`
	// EffectiveTopic is the topic write is judged on: for a user with a
	// publish prefix, prefix + topic; otherwise topic.
	EffectiveTopic string         `json:"effectiveTopic"`
	Read           accessDecision `json:"read"`
	Write          accessDecision `json:"write"`
}

// accessQuery is a parsed, validated access check request.
type accessQuery struct {
	ctx             acl.Context
	topic, clientID string
	username, role  string
	byUser, filter  bool
}

// parseAccessQuery reads and checks the query (400).
func parseAccessQuery(r *http.Request) (accessQuery, error) {
	v := r.URL.Query()
	q := accessQuery{topic: v.Get("topic"), clientID: v.Get("clientId"), username: v.Get("username"), role: v.Get("role")}
	if q.topic == "" {
		return q, errorf(http.StatusBadRequest, "topic is required")
	}
	if (q.username == "") == (q.role == "") {
		return q, errorf(http.StatusBadRequest, "give exactly one of username and role")
	}
	if len(q.clientID) > maxClientIDLen {
		return q, errorf(http.StatusBadRequest, "clientId is longer than %d bytes", maxClientIDLen)
	}
	q.byUser = q.username != ""
	switch c := v.Get("context"); c {
	case "", string(acl.ContextMQTT):
		q.ctx = acl.ContextMQTT
		q.filter = acl.IsFilter(q.topic)
	case string(acl.ContextHTTP):
		q.ctx = acl.ContextHTTP
	default:
		return q, errorf(http.StatusBadRequest, "context must be mqtt or http")
	}
	if err := (acl.Question{Topic: q.topic, Op: acl.OpRead}).Validate(q.ctx); err != nil {
		return q, fmt.Errorf("topic: %w", err)
	}
	if q.byUser {
		q.username = credential.NormalizeUsername(q.username)
	}
	return q, nil
}

// accessSubjectOf is what an access check is about: the user (nil for a
// role) and the roles whose permissions count, in the order they are held.
type accessSubjectOf struct {
	user  *store.User
	roles []store.Role
}

func (s *Server) checkAccess(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := parseAccessQuery(r)
	if err != nil {
		return err
	}
	if s.opts.Broker == nil {
		return errorf(http.StatusServiceUnavailable, "access decisions are not available: the broker runs without authentication")
	}
	sub, err := s.accessSubject(r, c, q)
	if err != nil {
		return err
	}
	ans, err := s.explainSubject(q, sub)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// explainSubject answers q for sub.
func (s *Server) explainSubject(q accessQuery, sub accessSubjectOf) (accessAnswer, error) {
	var perms []acl.Permission
	var from []store.Role // from[i] holds perms[i]
	for _, ro := range sub.roles {
		for _, p := range ro.Permissions {
			perms = append(perms, p)
			from = append(from, ro)
		}
	}
	ans := accessAnswer{Subject: accessSubject{Kind: "role", Name: q.role}, Topic: q.topic, Context: string(q.ctx),
		Filter: q.filter, ClientID: q.clientID, EffectiveTopic: q.topic}
	binding := acl.Question{Topic: q.topic, ClientID: q.clientID}
	if q.ctx == acl.ContextHTTP {
		binding.ClientID = "" // the API binds no client ID to http permissions
	}
	prefix := ""
	if sub.user != nil {
		ans.Subject = accessSubject{Kind: "user", Name: sub.user.Username}
		binding.Username = q.username
		if sub.user.Suspended {
			ans.Read = accessDecision{Reason: "user is suspended"}
			ans.Write = ans.Read
			return ans, nil
		}
		if q.ctx == acl.ContextMQTT && !q.filter {
			// Subscriptions and HTTP paths are not prefixed.
			prefix = sub.user.MQTTPublishPrefix
			ans.EffectiveTopic = prefix + q.topic
		}
	}
	var err error
	if ans.Read, err = explainAccess(q.ctx, perms, from, binding, acl.OpRead); err != nil {
		return ans, err
	}
	if q.filter {
		ans.Write = accessDecision{Reason: "a filter cannot be published to"}
		return ans, nil
	}
	ans.Write, err = s.explainWrite(q.ctx, perms, from, binding, prefix)
	return ans, err
}

// accessSubject loads the user or role q names, for a caller who may read
// it. A caller who may not read the users (or roles) gets 403 whether the
// one named exists or not, so the endpoint tells it nothing about which
// exist; one who may gets 404 for one that does not exist.
func (s *Server) accessSubject(r *http.Request, c *caller, q accessQuery) (accessSubjectOf, error) {
	ctx := r.Context()
	if q.byUser {
		u, err := s.st.UserByUsername(ctx, q.username)
		if err := s.mayReadSubject(c, "/api/users", u.ID, "user", err); err != nil {
			return accessSubjectOf{}, err
		}
		roles, err := s.accounts.HeldRoles(ctx, u)
		return accessSubjectOf{user: &u, roles: roles}, err
	}
	ro, err := s.st.RoleByName(ctx, q.role)
	if err := s.mayReadSubject(c, "/api/roles", ro.ID, "role", err); err != nil {
		return accessSubjectOf{}, err
	}
	return accessSubjectOf{roles: []store.Role{ro}}, nil
}

// mayReadSubject decides what a caller learns of the lookup of a user or
// role (kind) under collection (/api/users, /api/roles) that ended with
// id and lookupErr: nothing (403) unless it may read that record.
func (s *Server) mayReadSubject(c *caller, collection, id, kind string, lookupErr error) error {
	denied := errorf(http.StatusForbidden, "missing permission to read this %s (GET %s/{id})", kind, collection)
	switch {
	case errors.Is(lookupErr, store.ErrNotFound):
		if !c.http.Allows(collection, acl.OpRead) {
			return denied
		}
		return errorf(http.StatusNotFound, "%s not found", kind)
	case lookupErr != nil:
		return lookupErr
	case !c.http.Allows(collection+"/"+id, acl.OpRead):
		return denied
	}
	return nil
}

// explainWrite is the write decision. For a user's MQTT topic it is the
// broker's PUBLISH rule (prefix, topic limits, write permission), with
// the permission it rests on explained on the prefixed topic.
func (s *Server) explainWrite(ctx acl.Context, perms []acl.Permission, from []store.Role, q acl.Question, prefix string) (accessDecision, error) {
	if ctx != acl.ContextMQTT {
		return explainAccess(ctx, perms, from, q, acl.OpWrite)
	}
	m, err := acl.Compile(ctx, perms)
	if errors.Is(err, acl.ErrInvalidPermission) {
		return brokenPermissions, nil
	}
	if err != nil {
		return accessDecision{}, err
	}
	topic, ok := s.opts.Broker.PublishTopic(prefix, m.Bind(q.Username, q.ClientID), q.Topic)
	q.Topic, q.Op = topic, acl.OpWrite
	if err := q.Validate(ctx); err != nil {
		return accessDecision{Reason: "the publish prefix makes the topic invalid: " + err.Error()}, nil
	}
	d, err := explainAccess(ctx, perms, from, q, acl.OpWrite)
	if err == nil && d.Allowed != ok {
		// Only the topic limits, which the matcher does not know, can
		// refuse what a permission allows.
		d = accessDecision{Reason: "the prefixed topic exceeds the broker's topic limits"}
	}
	return d, err
}

// brokenPermissions is the decision for a subject with a stored
// permission that does not compile (data edited behind warden's back):
// the broker denies such a user everything.
var brokenPermissions = accessDecision{Reason: "a stored permission does not compile: nothing is allowed"}

// explainAccess explains op on q.Topic over perms (from[i] is the role of
// perms[i]).
func explainAccess(ctx acl.Context, perms []acl.Permission, from []store.Role, q acl.Question, op acl.Operation) (accessDecision, error) {
	q.Op = op
	v, err := acl.Explain(ctx, perms, q)
	if errors.Is(err, acl.ErrInvalidPermission) {
		return brokenPermissions, nil
	}
	if err != nil {
		return accessDecision{}, err
	}
	view := func(i int) accessPermission {
		p := perms[i]
		return accessPermission{ID: p.ID, Resource: p.Resource, Operation: string(p.Operation), Context: string(p.Context),
			Role: from[i].Name, RoleID: from[i].ID}
	}
	if !v.Allowed || len(v.By) == 0 {
		return accessDecision{Reason: deniedReason(perms, v.Unresolved, q, op)}, nil
	}
	first := view(v.By[0])
	d := accessDecision{Allowed: true, Permission: &first, Resolved: acl.Resolve(first.Resource, q.Username, q.ClientID)}
	for _, i := range v.By[1:] {
		d.AlsoAllowedBy = append(d.AlsoAllowedBy, view(i))
	}
	return d, nil
}

// maxReasonNames bounds the permissions a reason names.
const maxReasonNames = 5

// deniedReason says why nothing allows op: no permission does, or those
// that could use a placeholder without a value, which never matches.
func deniedReason(perms []acl.Permission, unresolved []int, q acl.Question, op acl.Operation) string {
	reason := "no permission allows " + string(op)
	if len(unresolved) == 0 {
		return reason
	}
	var names []string
	for _, i := range unresolved {
		names = append(names, perms[i].Resource)
	}
	if len(names) > maxReasonNames {
		names = append(names[:maxReasonNames], "...")
	}
	var missing []string
	for _, ph := range []struct{ text, value, none string }{
		{"{username}", q.Username, "a role has no username"},
		{"{clientId}", q.ClientID, "no clientId given"},
	} {
		if !strings.Contains(strings.Join(names, " "), ph.text) {
			continue
		}
		why := ph.none
		if ph.value != "" {
			why = "its value holds '/', '+', '#' or U+0000"
		}
		missing = append(missing, ph.text+" ("+why+")")
	}
	return fmt.Sprintf("%s: %s would need %s; a placeholder that cannot be resolved never matches",
		reason, strings.Join(names, ", "), strings.Join(missing, " and "))
}
