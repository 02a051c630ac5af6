package natscallout

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/store"
)

// requestSubject is where a NATS server sends its auth callout requests
// (nats-server's AuthCalloutSubject).
const requestSubject = "$SYS.REQ.USER.AUTH"

// xkeyHeader carries the server's curve key on an encrypted request
// (nats-server's AuthRequestXKeyHeader).
const xkeyHeader = "Nats-Server-Xkey"

// Defaults of Options: the account clients land in, the queue group of
// the warden nodes, the lifetime of a user JWT without a login token.
const (
	DefaultAccount = MQTTAccount
	DefaultQueue   = "warden"
	DefaultExpiry  = 24 * time.Hour
)

// Decider decides connection attempts and, when the model changes,
// whether admitted clients may stay (an *authhook.Hook).
type Decider interface {
	Decide(ctx context.Context, a authhook.Attempt) (authhook.Decision, error)
	Recheck(ctx context.Context, g authhook.Grant) (authhook.Decision, error)
	OnChange(fn func(store.Event)) (stop func())
}

// PermissionsFunc compiles a user's mqtt permissions, bound to its
// username and client ID, to NATS publish/subscribe permissions.
type PermissionsFunc func(perms []acl.Permission, username, clientID string) (jwt.Permissions, error)

// Options configure a Service. URL, Decider, Issuer, Permissions and
// Store are required.
type Options struct {
	// URL is the NATS server(s) to connect to, comma-separated.
	URL string
	// Connect holds the nats.go options warden connects with: at least
	// the auth user's credentials (nats.UserInfo), which the server's
	// auth_callout block lists in auth_users.
	Connect []nats.Option
	// System holds the nats.go options of warden's user in the system
	// account (User + SystemUserSuffix in the printed configuration),
	// applied after Connect's (TLS settings carry over; the credentials
	// override),
	// which lists the servers' clients and kicks them when a change ends
	// or alters their access. nil: changes reach a client only when its
	// user JWT expires (a warning at Start says so).
	System []nats.Option
	// Decider decides each attempt: the authhook.Hook of this node.
	Decider Decider
	// Store is the shared model: it records which user owns each MQTT
	// client ID (claims.go).
	Store store.Store
	// Issuer is the account nkey the server's auth_callout names as
	// issuer; it signs the responses and the user JWTs.
	Issuer nkeys.KeyPair
	// XKey is the curve key whose public half the auth_callout's xkey
	// names; nil: requests and responses are not encrypted (a request
	// that is encrypted anyway is answered with nothing).
	XKey nkeys.KeyPair
	// Permissions compiles the admitted user's permissions.
	Permissions PermissionsFunc
	// ClientCAs, when set, must verify a client certificate the server
	// passes on (besides the server's own verification); nil: the
	// server's verified chain is trusted as it is.
	ClientCAs *x509.CertPool
	// Account is the account admitted clients are placed in
	// (DefaultAccount).
	Account string
	// Queue is the queue group every warden node subscribes in, so each
	// request is answered once (DefaultQueue).
	Queue string
	// Expiry bounds a user JWT not tied to a login token (DefaultExpiry),
	// less a random part of up to a tenth: clients admitted together (after
	// an outage) do not all have to reconnect at the same moment. Changes
	// disconnect the clients they affect (kick.go); the expiry bounds a
	// session when no warden node can reach the servers.
	Expiry time.Duration
	// Resweep is how often every connected client is rechecked without a
	// change (DefaultResweep).
	Resweep time.Duration
	// RequestTimeout bounds each request to the servers' system API
	// (default 2 s).
	RequestTimeout time.Duration
	// Workers is how many requests are decided at once (default
	// 4×GOMAXPROCS): password checks take milliseconds.
	Workers int
	// Logger receives refusals the Decider did not log and failures to
	// answer (never a password or a JWT); nil: none.
	Logger *slog.Logger
}

// ErrOptions reports an Options value that Start cannot work with.
var ErrOptions = errors.New("natscallout: invalid options")

// Service answers a NATS server's auth callout requests with warden's
// CONNECT decisions. Stop it with Close.
type Service struct {
	opts   Options
	issuer string // Issuer's public key
	nc     *nats.Conn
	sys    *nats.Conn // nil without Options.System
	sub    *nats.Subscription
	claims *claims
	stop   func()        // ends the Decider's OnChange calls
	wake   chan struct{} // asks for a sweep (kick.go)
	swept  chan struct{} // closed when the sweep loop ends
	// servers are the IDs of the servers that answered the last sweep;
	// the sweep loop's alone.
	servers map[string]bool
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	slots   chan struct{}

	mu     sync.Mutex
	closed bool           // Close began: no new request is started
	wg     sync.WaitGroup // the requests being decided
}

// Start connects to NATS and answers auth callout requests until Close;
// cancelling ctx abandons the decisions under way.
func Start(ctx context.Context, o Options) (*Service, error) {
	o, pub, err := o.checked()
	if err != nil {
		return nil, err
	}
	s := &Service{opts: o, issuer: pub, log: o.Logger, slots: make(chan struct{}, o.Workers),
		claims: newClaims(o.Store), wake: make(chan struct{}, 1), swept: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(ctx)
	if err := s.connect(); err != nil {
		s.closeSys()
		s.cancel()
		return nil, err
	}
	if s.sys != nil {
		s.stop = o.Decider.OnChange(s.changed)
		s.wake <- struct{}{} // clients admitted before this node started
		go s.sweepLoop()
	} else {
		close(s.swept)
	}
	return s, nil
}

// checked returns o with its defaults filled in and the issuer's public
// key, or why Start cannot work with o.
func (o Options) checked() (Options, string, error) {
	if o.URL == "" || o.Decider == nil || o.Issuer == nil || o.Permissions == nil || o.Store == nil {
		return o, "", fmt.Errorf("%w: URL, Decider, Issuer, Permissions and Store are required", ErrOptions)
	}
	pub, err := o.Issuer.PublicKey()
	if err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return o, "", fmt.Errorf("%w: the issuer must be an account nkey", ErrOptions)
	}
	if k, err := newIssuerKey(o.Issuer); err == nil {
		o.Issuer = k
	} // else a key pair without a seed (an HSM's): used as it is
	if o.XKey != nil {
		if xpub, err := o.XKey.PublicKey(); err != nil || !nkeys.IsValidPublicCurveKey(xpub) {
			return o, "", fmt.Errorf("%w: the xkey must be a curve nkey", ErrOptions)
		}
	}
	o.Account = cmp.Or(o.Account, DefaultAccount)
	o.Queue = cmp.Or(o.Queue, DefaultQueue)
	o.Expiry = positiveOr(o.Expiry, DefaultExpiry)
	o.Resweep = positiveOr(o.Resweep, DefaultResweep)
	o.RequestTimeout = positiveOr(o.RequestTimeout, 2*time.Second)
	o.Workers = positiveOr(o.Workers, 4*runtime.GOMAXPROCS(0))
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, pub, nil
}

// positiveOr is v, or def when v is not positive.
func positiveOr[T time.Duration | int](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// connect opens the system user's connection (if any) and the auth
// user's, and subscribes to the callout requests.
func (s *Service) connect() error {
	o := s.opts
	var err error
	if o.System != nil {
		s.sys, err = nats.Connect(o.URL, slices.Concat([]nats.Option{nats.Name("warden kicks"), nats.MaxReconnects(-1)}, o.Connect, o.System)...)
		if err != nil {
			return fmt.Errorf("natscallout: connect the system user: %w", err)
		}
	} else {
		s.log.Warn("nats auth callout without a system user: changes reach connected NATS clients only when their JWT expires")
	}
	s.nc, err = nats.Connect(o.URL, append([]nats.Option{nats.Name("warden auth callout"), nats.MaxReconnects(-1)}, o.Connect...)...)
	if err != nil {
		return fmt.Errorf("natscallout: connect: %w", err)
	}
	s.sub, err = s.nc.QueueSubscribe(requestSubject, o.Queue, s.receive)
	if err == nil {
		err = s.nc.Flush() // the server knows the subscription before Start returns
	}
	if err != nil {
		s.nc.Close()
		return fmt.Errorf("natscallout: subscribe %s: %w", requestSubject, err)
	}
	return nil
}

// closeSys closes the system user's connection, if any.
func (s *Service) closeSys() {
	if s.sys != nil {
		s.sys.Close()
	}
}

// Close stops answering, lets the requests under way be answered, and
// disconnects. A request delivered but not yet started goes unanswered:
// the server refuses that client when its auth timeout ends.
func (s *Service) Close() error {
	err := s.sub.Unsubscribe()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	if s.stop != nil {
		s.stop()
	}
	s.cancel()
	<-s.swept
	s.nc.Close()
	s.closeSys()
	return err
}

// receive hands a request to a worker; nats.go runs a subscription's
// callbacks one at a time, and a password check must not hold up the rest.
func (s *Service) receive(m *nats.Msg) {
	select {
	case s.slots <- struct{}{}:
	case <-s.ctx.Done():
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.slots
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() { <-s.slots; s.wg.Done() }()
		s.answer(m)
	}()
}

// answer decides one request and responds. A request that cannot be read
// gets no answer: the server refuses the client when its wait times out.
func (s *Service) answer(m *nats.Msg) {
	data, serverXKey, err := s.open(m)
	if err != nil {
		s.log.Warn("nats auth callout: unreadable request", "err", err)
		return
	}
	req, err := jwt.DecodeAuthorizationRequestClaims(string(data))
	if err != nil {
		s.log.Warn("nats auth callout: undecodable request", "err", err)
		return
	}
	vr := jwt.CreateValidationResults()
	req.Validate(vr)
	if vr.IsBlocking(true) {
		s.log.Warn("nats auth callout: invalid request", "err", errors.Join(vr.Errors()...))
		return
	}
	userJWT, refusal := s.decide(req)
	res := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	res.Audience = req.Server.ID
	if refusal != "" {
		res.Error = refusal
	} else {
		res.Jwt = userJWT
	}
	out, err := res.Encode(s.opts.Issuer)
	if err != nil {
		s.log.Error("nats auth callout: sign response", "err", err)
		return
	}
	resp := []byte(out)
	if serverXKey != "" {
		if resp, err = s.opts.XKey.Seal(resp, serverXKey); err != nil {
			s.log.Error("nats auth callout: encrypt response", "err", err)
			return
		}
	}
	if err := m.Respond(resp); err != nil {
		s.log.Warn("nats auth callout: respond", "err", err)
	}
}

// open returns the request's JWT, decrypted if the server encrypted it
// (then also the server's curve key, to encrypt the answer with).
func (s *Service) open(m *nats.Msg) (data []byte, serverXKey string, err error) {
	serverXKey = m.Header.Get(xkeyHeader)
	if serverXKey == "" {
		return m.Data, "", nil
	}
	if s.opts.XKey == nil {
		return nil, "", errors.New("request encrypted, but no xkey configured")
	}
	data, err = s.opts.XKey.Open(m.Data, serverXKey)
	if err != nil {
		return nil, "", fmt.Errorf("decrypt: %w", err)
	}
	return data, serverXKey, nil
}

// errPublishPrefix refuses a user with a publish prefix: its audit reason.
var errPublishPrefix = errors.New("publish prefix not supported by this broker")

// decide returns the user JWT for the client req describes, or the reason
// it is refused (for the server's log: the client is told only
// "Authorization Violation").
func (s *Service) decide(req *jwt.AuthorizationRequestClaims) (userJWT, refusal string) {
	a, err := s.attempt(req)
	if err != nil {
		s.log.Info("nats auth callout: refused", "user", req.ConnectOptions.Username, "remote", req.ClientInformation.Host, "reason", err.Error())
		return "", "not_authorized"
	}
	// The permissions are converted inside the decision, so that what NATS
	// cannot express refuses the client like any other rule: logged,
	// audited and counted, with the reason.
	var perms jwt.Permissions
	a.Admit = func(d authhook.Decision) error {
		if d.PublishPrefix != "" {
			// NATS cannot prepend it: unprefixed topics would be others'.
			return errPublishPrefix
		}
		var err error
		perms, err = s.opts.Permissions(d.Permissions, d.Username, d.ClientID)
		if err != nil {
			return fmt.Errorf("permissions not expressible in NATS: %w", err)
		}
		return s.claims.claim(s.ctx, d.ClientID, d.UserID)
	}
	d, err := s.opts.Decider.Decide(s.ctx, a)
	var r *authhook.Refusal
	switch {
	case errors.As(err, &r):
		return "", r.Code.String() // authhook logged and audited it
	case err != nil:
		s.log.Error("nats auth callout: decide", "user", a.Username, "err", err)
		return "", "unavailable"
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Audience = s.opts.Account
	uc.Name = d.Username
	uc.Permissions = perms
	if uc.Tags, err = grantTags(d, perms); err != nil {
		s.log.Error("nats auth callout: tag user", "user", d.Username, "err", err)
		return "", "unavailable"
	}
	exp := a.Now.Add(s.opts.Expiry - rand.N(s.opts.Expiry/10+1))
	if !d.TokenExpiry.IsZero() && d.TokenExpiry.Before(exp) {
		exp = d.TokenExpiry
	}
	uc.Expires = exp.Unix()
	userJWT, err = uc.Encode(s.opts.Issuer)
	if err != nil {
		s.log.Error("nats auth callout: sign user", "user", d.Username, "err", err)
		return "", "unavailable"
	}
	return userJWT, ""
}

// attempt is the connection attempt req describes. An MQTT client's
// client ID comes in the client information (a NATS client has none); a
// client certificate counts only if the server verified it, and
// ClientCAs, when set, verify it again.
func (s *Service) attempt(req *jwt.AuthorizationRequestClaims) (authhook.Attempt, error) {
	a := authhook.Attempt{
		Username: req.ConnectOptions.Username,
		ClientID: req.ClientInformation.MQTT,
		Remote:   req.ClientInformation.Host,
		Now:      time.Now(),
	}
	if req.ConnectOptions.Password != "" {
		a.Password = []byte(req.ConnectOptions.Password)
	}
	if req.TLS == nil || len(req.TLS.VerifiedChains) == 0 || len(req.TLS.VerifiedChains[0]) == 0 {
		return a, nil
	}
	chain := make([]*x509.Certificate, 0, len(req.TLS.VerifiedChains[0]))
	for _, p := range req.TLS.VerifiedChains[0] {
		blk, _ := pem.Decode([]byte(p))
		if blk == nil {
			return a, errors.New("client certificate not PEM")
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return a, fmt.Errorf("client certificate: %w", err)
		}
		chain = append(chain, c)
	}
	if pool := s.opts.ClientCAs; pool != nil {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return a, fmt.Errorf("client certificate not trusted by warden: %w", err)
		}
	}
	a.Cert = chain[0]
	return a, nil
}
