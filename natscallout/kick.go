package natscallout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/store"
)

// A NATS server enforces the permissions warden signed at CONNECT until
// the user JWT expires; it never asks again. So every warden node, after
// each change to the model (Decider.OnChange) and every Options.Resweep,
// lists the clients of the account on every server (CONNZ), rechecks each
// one's grant, and kicks those whose access ended or whose permissions
// changed: they reconnect and are decided anew. The grant and a digest of
// the permissions travel in the user JWT's tags, which the servers report
// with each connection: any warden node can recheck any client, whichever
// node admitted it, without a registry of its own.

// The tags a user JWT carries (tags are lower-cased by the jwt library,
// hence hex).
const (
	grantTag = "warden-grant:" // hex of the JSON authhook.Grant
	permsTag = "warden-perms:" // permsDigest of the signed permissions
)

// The system API subjects of nats-server (server/events.go).
const (
	connzPingSubject = "$SYS.REQ.SERVER.PING.CONNZ"
	connzSubject     = "$SYS.REQ.SERVER.%s.CONNZ"
	kickSubject      = "$SYS.REQ.SERVER.%s.KICK"
)

// connzPage is how many connections one CONNZ answer lists.
const connzPage = 1024

// DefaultResweep is how often every client is rechecked without a change
// (a missed change feed, a warden node that was down).
const DefaultResweep = time.Minute

// How long a sweep waits for one more server's CONNZ answer after the
// last one, the number of servers not being known in advance: replyGap
// while a server that answered the previous sweep has not answered yet,
// newServerGap once they all have (a server that joined since).
const (
	replyGap     = 250 * time.Millisecond
	newServerGap = 20 * time.Millisecond
)

// grantTags are the tags of a user JWT for d, its permissions compiled as
// perms.
func grantTags(d authhook.Decision, perms jwt.Permissions) (jwt.TagList, error) {
	g, err := json.Marshal(d.Grant)
	if err != nil {
		return nil, err
	}
	return jwt.TagList{grantTag + hex.EncodeToString(g), permsTag + permsDigest(perms)}, nil
}

// grantOf reads back what grantTags wrote; ok is false for a client
// warden did not admit this way.
func grantOf(tags []string) (g authhook.Grant, digest string, ok bool) {
	var gs string
	for _, t := range tags {
		if v, found := strings.CutPrefix(t, grantTag); found {
			gs = v
		} else if v, found := strings.CutPrefix(t, permsTag); found {
			digest = v
		}
	}
	raw, err := hex.DecodeString(gs)
	if gs == "" || digest == "" || err != nil || json.Unmarshal(raw, &g) != nil || g.UserID == "" {
		return authhook.Grant{}, "", false
	}
	return g, digest, true
}

// permsDigest identifies a set of permissions whatever the order of their
// subjects (a role list reordered grants the same).
func permsDigest(p jwt.Permissions) string {
	h := sha256.New()
	for _, l := range [][]string{p.Pub.Allow, p.Pub.Deny, p.Sub.Allow, p.Sub.Deny} {
		s := slices.Clone(l)
		slices.Sort(s)
		for _, x := range s {
			h.Write([]byte(x))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	if p.Resp != nil {
		fmt.Fprintf(h, "resp %d %d", p.Resp.MaxMsgs, p.Resp.Expires)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// remoteConn is one client connection a server reported.
type remoteConn struct {
	server string // server ID
	CID    uint64 `json:"cid"`
	User   string `json:"authorized_user"`
	MQTT   string `json:"mqtt_client"`
	Tags   []string
}

// connzRequest is the part of nats-server's ConnzEventOptions warden sets.
type connzRequest struct {
	Account string `json:"acc"`
	Auth    bool   `json:"auth"` // the user and its tags
	Offset  int    `json:"offset"`
	Limit   int    `json:"limit"`
}

// connzAnswer is the part of a CONNZ answer (ServerAPIResponse with a
// Connz) warden reads.
type connzAnswer struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	Data struct {
		Total int `json:"total"`
		Conns []struct {
			CID  uint64   `json:"cid"`
			User string   `json:"authorized_user"`
			MQTT string   `json:"mqtt_client"`
			Tags []string `json:"tags"`
		} `json:"connections"`
	} `json:"data"`
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
}

// sweepSpacing is the least time between the starts of two sweeps: a
// burst of changes (a user who logs in over HTTP again and again writes
// its record each time) costs the servers at most a few CONNZ a second.
const sweepSpacing = 200 * time.Millisecond

// sweepLoop runs sweeps on demand (wake) and every Resweep, until Close.
func (s *Service) sweepLoop() {
	defer close(s.swept)
	tick := time.NewTicker(s.opts.Resweep)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
		next := time.Now().Add(sweepSpacing)
		if err := s.sweep(); err != nil && s.ctx.Err() == nil {
			s.log.Warn("nats auth callout: recheck of connected clients", "err", err)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
	}
}

// changed asks for a sweep; changes that come while one runs are
// covered by one more.
func (s *Service) changed(store.Event) {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sweep rechecks every client warden admitted that a server of the
// cluster reports, and kicks those that may no longer stay as they are.
func (s *Service) sweep() error {
	conns, err := s.connections()
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range conns {
		g, digest, ok := grantOf(c.Tags)
		if !ok {
			continue
		}
		reason, err := s.recheck(g, digest)
		if err != nil {
			errs = append(errs, err) // the store cannot tell: keep it, ask again next time
			continue
		}
		if reason == "" {
			continue
		}
		if err := s.kick(c); err != nil {
			errs = append(errs, fmt.Errorf("kick client %d on server %s: %w", c.CID, c.server, err))
			continue
		}
		s.log.Info("nats client disconnected", "user", g.Username, "client", g.ClientID, "server", c.server, "reason", reason)
	}
	return errors.Join(errs...)
}

// recheck returns why a client admitted with g and permissions digest
// must reconnect, or "" if it may stay as it is.
func (s *Service) recheck(g authhook.Grant, digest string) (string, error) {
	d, err := s.opts.Decider.Recheck(s.ctx, g)
	var r *authhook.Refusal
	if errors.As(err, &r) {
		return r.Reason, nil
	}
	if err != nil {
		return "", err
	}
	if d.PublishPrefix != "" {
		return errPublishPrefix.Error(), nil
	}
	perms, err := s.opts.Permissions(d.Permissions, d.Username, d.ClientID)
	if err != nil {
		return "permissions not expressible in NATS", nil
	}
	if permsDigest(perms) != digest {
		return "permissions changed", nil
	}
	return "", nil
}

// connections lists the clients of the account on every server: each
// server answers the PING with its first page, and is asked directly for
// the rest.
func (s *Service) connections() ([]remoteConn, error) {
	inbox := s.sys.NewRespInbox()
	sub, err := s.sys.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(connzRequest{Account: s.opts.Account, Auth: true, Limit: connzPage})
	if err := s.sys.PublishRequest(connzPingSubject, inbox, req); err != nil {
		return nil, err
	}
	var conns []remoteConn
	answered := map[string]bool{}
	wait := s.opts.RequestTimeout // the first answer
	for {
		m, err := sub.NextMsg(wait)
		if errors.Is(err, nats.ErrTimeout) && len(answered) > 0 {
			s.servers = answered
			return conns, nil
		}
		if err != nil {
			return nil, fmt.Errorf("CONNZ: %w", err)
		}
		page, total, server, err := readConnz(m.Data)
		if err != nil {
			return nil, err
		}
		answered[server] = true
		conns = append(conns, page...)
		for n := len(page); n < total && len(page) > 0; n += len(page) {
			if page, err = s.connzPage(server, n); err != nil {
				return nil, err
			}
			conns = append(conns, page...)
		}
		wait = newServerGap
		for id := range s.servers {
			if !answered[id] {
				wait = replyGap
				break
			}
		}
	}
}

// connzPage asks one server for its clients from offset on.
func (s *Service) connzPage(server string, offset int) ([]remoteConn, error) {
	req, _ := json.Marshal(connzRequest{Account: s.opts.Account, Auth: true, Offset: offset, Limit: connzPage})
	m, err := s.sys.Request(fmt.Sprintf(connzSubject, server), req, s.opts.RequestTimeout)
	if err != nil {
		return nil, err
	}
	page, _, _, err := readConnz(m.Data)
	return page, err
}

// readConnz decodes one CONNZ answer: a page of clients, how many the
// server has, and the server's ID.
func readConnz(data []byte) ([]remoteConn, int, string, error) {
	var a connzAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, 0, "", fmt.Errorf("CONNZ answer: %w", err)
	}
	if a.Error != nil {
		return nil, 0, "", fmt.Errorf("CONNZ: %s", a.Error.Description)
	}
	out := make([]remoteConn, 0, len(a.Data.Conns))
	for _, c := range a.Data.Conns {
		out = append(out, remoteConn{server: a.Server.ID, CID: c.CID, User: c.User, MQTT: c.MQTT, Tags: c.Tags})
	}
	return out, a.Data.Total, a.Server.ID, nil
}

// kick asks c's server to disconnect it. A client already gone (another
// warden node kicked it) is not an error worth reporting.
func (s *Service) kick(c remoteConn) error {
	req, _ := json.Marshal(struct {
		CID uint64 `json:"cid"`
	}{c.CID})
	m, err := s.sys.Request(fmt.Sprintf(kickSubject, c.server), req, s.opts.RequestTimeout)
	if err != nil {
		return err
	}
	var a connzAnswer
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return fmt.Errorf("KICK answer: %w", err)
	}
	if a.Error != nil && !strings.Contains(a.Error.Description, "no such client") {
		return errors.New(a.Error.Description)
	}
	return nil
}
