package registry

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store"
)

// Defaults for Options fields left zero.
const (
	DefaultOpenDuration   = 30 * time.Second
	DefaultMaxOpen        = time.Hour
	DefaultCertLifetime   = 365 * 24 * time.Hour
	DefaultGrantRetention = time.Hour
	DefaultMaxPending     = 10_000
)

// SettingState is the store setting holding the registry's lock state,
// shared by every node.
const SettingState = "registry/state"

// Credential types of a request (the seed's credentialType).
const (
	CredentialPassword    = "password"
	CredentialCertificate = "certificate"
)

// Flows a request arrived by.
const (
	FlowExplicit = "explicit" // POST /api/client-registry/register
	FlowImplicit = "implicit" // an MQTT CONNECT from an unknown user
)

// Errors of Register and Confirm; the admin API maps them to statuses.
var (
	// ErrLocked: the registry is not open (423).
	ErrLocked = errors.New("the client registry is locked")
	// ErrInvalid: the request is malformed (400); wrapped with the reason.
	ErrInvalid = errors.New("invalid registration request")
	// ErrPolicy: the username or password breaks a rule (422).
	ErrPolicy = errors.New("registration violates the policy")
	// ErrConflict: another request is pending for the username with other
	// credentials, or the user exists (409).
	ErrConflict = errors.New("registration conflict")
	// ErrFull: too many requests are pending (429).
	ErrFull = errors.New("too many pending registration requests")
	// ErrBusy: no hashing slot became free in time (503).
	ErrBusy = errors.New("registry busy")
)

// Options configure a Registry.
type Options struct {
	Store store.Store
	// CA signs the certificates of CSR registrations; nil refuses CSRs.
	CA     *pki.CA
	Logger *slog.Logger
	// Policy checks registered passwords; Params hash them.
	Policy credential.Policy
	Params credential.Params
	// MaxOpen caps the duration of POST /open.
	MaxOpen time.Duration
	// CertLifetime is the validity of issued client certificates.
	CertLifetime time.Duration
	// AutoGrantRoles, when set, grants every request on arrival while the
	// registry is open, with these roles (names). Off by default: it is
	// meant for trusted production lines only.
	AutoGrantRoles []string
	// GrantRetention keeps a granted request so the device's repeated
	// poll gets the same answer (and certificate).
	GrantRetention time.Duration
	// MaxPending bounds stored requests.
	MaxPending int
	// Verifier runs the registry's argon2id work (hashing registered
	// passwords, checking polls) on the pool the logins use, so that the
	// public registration endpoint cannot get around its bound; nil: a
	// pool of its own with HashWorkers workers (default: the cores).
	Verifier    *credential.Verifier
	HashWorkers int
	// Now is the clock (tests inject one).
	Now func() time.Time
}

// Registry is the client registry: its open/locked state and requests
// live in the store, so every node sees the same registry.
type Registry struct {
	o   Options
	st  store.Store
	log *slog.Logger
	// ver hashes and verifies on a bounded pool; its Dummy is verified
	// when a registration names an existing user, as a poll of a pending
	// password request would verify its hash.
	ver *credential.Verifier
}

// New builds a registry.
func New(o Options) (*Registry, error) {
	if o.Store == nil {
		return nil, errors.New("registry: Options.Store is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Policy == (credential.Policy{}) {
		o.Policy = credential.DefaultPolicy()
	}
	if o.Params == (credential.Params{}) {
		o.Params = credential.DefaultParams
	}
	if o.MaxOpen <= 0 {
		o.MaxOpen = DefaultMaxOpen
	}
	if o.CertLifetime <= 0 {
		o.CertLifetime = DefaultCertLifetime
	}
	if o.GrantRetention <= 0 {
		o.GrantRetention = DefaultGrantRetention
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.HashWorkers <= 0 {
		o.HashWorkers = runtime.GOMAXPROCS(0)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Verifier == nil {
		v, err := credential.NewVerifier(credential.VerifierOptions{Workers: o.HashWorkers, Params: o.Params})
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		o.Verifier = v
	}
	return &Registry{o: o, st: o.Store, log: o.Logger, ver: o.Verifier}, nil
}

// Status is the answer of GET /api/client-registry/status.
type Status struct {
	// Status is "open" or "locked".
	Status string `json:"status"`
	// UnlockedUntil is the end of the open window in Unix milliseconds
	// (0 while locked).
	UnlockedUntil int64 `json:"unlockedUntil"`
}

type state struct {
	UnlockedUntil int64 `json:"unlockedUntil"` // Unix ms
}

// Status reports whether the registry is open, and until when.
func (r *Registry) Status(ctx context.Context) (Status, error) {
	raw, err := r.st.Setting(ctx, SettingState)
	if errors.Is(err, store.ErrNotFound) {
		return Status{Status: "locked"}, nil
	}
	if err != nil {
		return Status{}, err
	}
	var s state
	if err := json.Unmarshal(raw, &s); err != nil {
		return Status{}, fmt.Errorf("registry state: %w", err)
	}
	if s.UnlockedUntil <= r.o.Now().UnixMilli() {
		return Status{Status: "locked"}, nil
	}
	return Status{Status: "open", UnlockedUntil: s.UnlockedUntil}, nil
}

func (r *Registry) open(ctx context.Context) (bool, error) {
	s, err := r.Status(ctx)
	return s.Status == "open", err
}

// Open opens the registry for d (DefaultOpenDuration when d <= 0, at most
// MaxOpen).
func (r *Registry) Open(ctx context.Context, d time.Duration) (Status, error) {
	if d <= 0 {
		d = DefaultOpenDuration
	}
	d = min(d, r.o.MaxOpen)
	until := r.o.Now().Add(d).UnixMilli()
	raw, _ := json.Marshal(state{UnlockedUntil: until})
	if err := r.st.PutSetting(ctx, SettingState, raw); err != nil {
		return Status{}, err
	}
	r.log.Info("client registry opened", "until", time.UnixMilli(until).UTC())
	return Status{Status: "open", UnlockedUntil: until}, nil
}

// Lock closes the registry and flushes the pending requests; granted ones
// are kept for the devices' last poll.
func (r *Registry) Lock(ctx context.Context) error {
	raw, _ := json.Marshal(state{})
	if err := r.st.PutSetting(ctx, SettingState, raw); err != nil {
		return err
	}
	reqs, err := r.st.RegistryRequests(ctx)
	if err != nil {
		return err
	}
	flushed := 0
	for _, q := range reqs {
		if !q.Granted {
			if err := r.st.DeleteRegistryRequest(ctx, q.Username); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			flushed++
		}
	}
	r.log.Info("client registry locked", "flushed", flushed)
	return nil
}

// Reject discards the pending request of username: the device is told
// nothing more than "pending" until its next poll creates a new request
// (while the registry is open) or is refused (locked). A granted request
// cannot be rejected (ErrConflict): its user exists already, and is
// deleted or suspended through the user API. store.ErrNotFound when there
// is no request for username.
func (r *Registry) Reject(ctx context.Context, username string) error {
	q, err := r.st.RegistryRequest(ctx, username)
	if err != nil {
		return err
	}
	if q.Granted {
		return fmt.Errorf("%w: the request of %q was granted already; delete or suspend the user instead", ErrConflict, username)
	}
	if err := r.st.DeleteRegistryRequest(ctx, username); err != nil {
		return err
	}
	r.log.Info("client registry request rejected", "user", username)
	return nil
}

// Requests lists the stored requests, oldest first, after dropping
// granted ones past their retention.
func (r *Registry) Requests(ctx context.Context) ([]store.RegistryRequest, error) {
	reqs, err := r.st.RegistryRequests(ctx)
	if err != nil {
		return nil, err
	}
	out := reqs[:0]
	for _, q := range reqs {
		if r.expired(q) {
			_ = r.st.DeleteRegistryRequest(ctx, q.Username)
			continue
		}
		out = append(out, q)
	}
	return out, nil
}

func (r *Registry) expired(q store.RegistryRequest) bool {
	return q.Granted && r.o.Now().Sub(q.Timestamp) > r.o.GrantRetention
}

// Request is a device's self-registration (POST /register).
type Request struct {
	Username    string           `json:"username"`
	Password    string           `json:"password,omitempty"`
	CSR         string           `json:"csr,omitempty"`
	Roles       []string         `json:"roles,omitempty"`
	Permissions []acl.Permission `json:"permissions,omitempty"`
	Context     string           `json:"context"`
}

// Result is what a registration returns: Granted (201, with the
// certificate for a CSR) or pending (202).
type Result struct {
	Granted bool
	// Certificate is the issued certificate's PEM, base64-encoded as the
	// contract shows; empty for password registrations.
	Certificate string
}

// maxContext bounds the free-text context of a request.
const maxContext = 1024

// Register handles a device's request, or its repeated poll. A poll must
// carry the same credentials as the stored request: anything else is a
// conflict, never a takeover. The endpoint is public, so its answers
// must not tell which usernames exist: an existing user's name gets
// exactly the answer of a request pending with other credentials (the
// same 409, after the same work), while the registry is locked every
// refusal is ErrLocked, and while it is full every new name is ErrFull.
func (r *Registry) Register(ctx context.Context, req Request) (Result, error) {
	if err := credential.ValidUsername(req.Username); err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	if req.Password == "" && req.CSR == "" {
		return Result{}, fmt.Errorf("%w: a password or a csr is required", ErrInvalid)
	}
	if len(req.Context) > maxContext {
		return Result{}, fmt.Errorf("%w: context is longer than %d bytes", ErrInvalid, maxContext)
	}
	for i, p := range req.Permissions {
		if err := p.Validate(); err != nil {
			return Result{}, fmt.Errorf("%w: permission %d: %v", ErrInvalid, i, err)
		}
	}
	if req.Password != "" {
		if err := r.o.Policy.Check(req.Password); err != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrPolicy, err)
		}
	}
	var csr *x509.CertificateRequest
	if req.CSR != "" {
		var err error
		if csr, err = pki.ParseCSR([]byte(req.CSR)); err != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if csr.Subject.CommonName != req.Username {
			return Result{}, fmt.Errorf("%w: the CSR's common name %q does not match the username", ErrInvalid, csr.Subject.CommonName)
		}
		if r.o.CA == nil {
			return Result{}, fmt.Errorf("%w: this server does not sign certificates", ErrInvalid)
		}
	}

	// A stored request: this is a poll.
	q, err := r.st.RegistryRequest(ctx, req.Username)
	switch {
	case err == nil && r.expired(q):
		_ = r.st.DeleteRegistryRequest(ctx, q.Username)
	case err == nil:
		res, err := r.poll(ctx, q, req, csr)
		if errors.Is(err, ErrConflict) {
			// Only granted requests outlive a lock, and each is a user
			// now: while locked, other credentials get what any
			// unknown name gets.
			if open, oerr := r.open(ctx); oerr == nil && !open {
				return Result{}, ErrLocked
			}
		}
		return res, err
	case !errors.Is(err, store.ErrNotFound):
		return Result{}, err
	}

	open, err := r.open(ctx)
	if err != nil {
		return Result{}, err
	}
	if !open {
		return Result{}, ErrLocked
	}
	// Before the user lookup: a full registry answers every new name
	// alike, whether a user has it or not.
	if err := r.roomForOne(ctx); err != nil {
		return Result{}, err
	}
	if _, err := r.st.UserByUsername(ctx, req.Username); err == nil {
		// Answered as a poll of a pending request with other credentials
		// would be, after the same work: a password is verified (against
		// a dummy hash), a CSR's key compared.
		if req.Password != "" {
			if err := r.dummy(ctx, req.Password); err != nil {
				return Result{}, err
			}
		}
		return Result{}, conflict()
	} else if !errors.Is(err, store.ErrNotFound) {
		return Result{}, err
	}
	q = store.RegistryRequest{
		Username: req.Username, Roles: req.Roles, Permissions: req.Permissions, Context: req.Context,
		Flow: FlowExplicit, Timestamp: r.o.Now(), CredentialType: CredentialPassword,
	}
	if req.Password != "" {
		// Hashed from the moment it arrives: the plain password is never
		// stored.
		if q.PasswordHash, err = r.hash(ctx, req.Password); err != nil {
			return Result{}, err
		}
	}
	if csr != nil {
		q.CredentialType = CredentialCertificate
		q.CSR = []byte(req.CSR)
		q.Fingerprint = keyFingerprint(csr)
	}
	if _, err := r.st.CreateRegistryRequest(ctx, q); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// A concurrent first request won (a device's retry, or
			// another device): answer as a poll of the stored one.
			won, gerr := r.st.RegistryRequest(ctx, req.Username)
			if gerr != nil {
				return Result{}, conflict()
			}
			return r.poll(ctx, won, req, csr)
		}
		return Result{}, err
	}
	r.log.Info("client registry request", "user", q.Username, "flow", q.Flow, "credential", q.CredentialType)
	if len(r.o.AutoGrantRoles) > 0 {
		if _, err := r.Confirm(ctx, q.Username, Grant{RoleNames: r.o.AutoGrantRoles}); err != nil {
			// As in ConnectAttempt: the request stays pending for an
			// admin; the device is not told about our configuration.
			r.log.Warn("client registry auto-grant failed", "user", q.Username, "err", err)
			return Result{}, nil
		}
		q, err = r.st.RegistryRequest(ctx, q.Username)
		if err != nil {
			return Result{}, err
		}
		return r.poll(ctx, q, req, csr)
	}
	return Result{}, nil
}

// poll answers a repeated request: 201 once granted, 202 while pending,
// 409 when the credentials differ from the stored request's.
func (r *Registry) poll(ctx context.Context, q store.RegistryRequest, req Request, csr *x509.CertificateRequest) (Result, error) {
	taken := conflict()
	if q.Flow != FlowExplicit || (q.PasswordHash != "") != (req.Password != "") || (len(q.CSR) > 0) != (csr != nil) {
		return Result{}, taken
	}
	if csr != nil && subtle.ConstantTimeCompare([]byte(q.Fingerprint), []byte(keyFingerprint(csr))) != 1 {
		return Result{}, taken
	}
	if q.PasswordHash != "" {
		ok, err := r.verify(ctx, req.Password, q.PasswordHash)
		if err != nil {
			return Result{}, err
		}
		if !ok {
			return Result{}, taken
		}
	}
	if !q.Granted {
		return Result{}, nil
	}
	res := Result{Granted: true}
	if len(q.Result) > 0 {
		res.Certificate = base64.StdEncoding.EncodeToString(q.Result)
	}
	return res, nil
}

// conflict is the one answer for a username that is taken, by a request
// with other credentials or by a user: which of the two, it does not say
// (Connectware's 409: "a conflicting registration is pending or a
// conflicting user is already existing").
func conflict() error {
	return fmt.Errorf("%w: the username is taken: a registration with other credentials is pending, or a user of that name exists", ErrConflict)
}

// roomForOne refuses a new request when MaxPending are stored.
func (r *Registry) roomForOne(ctx context.Context) error {
	reqs, err := r.Requests(ctx)
	if err != nil {
		return err
	}
	if len(reqs) >= r.o.MaxPending {
		return ErrFull
	}
	return nil
}

// keyFingerprint identifies a CSR by its public key, so a device polling
// with a fresh CSR for the same key is recognised, and another key is not.
func keyFingerprint(csr *x509.CertificateRequest) string {
	sum := sha256.Sum256(csr.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// hash, verify and dummy run argon2id on the verifier's bounded pool:
// the registration endpoint needs no token, so a flood must not starve the
// process or allocate argon2id's memory without bound.
func (r *Registry) hash(ctx context.Context, pw string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, hashWait)
	defer cancel()
	h, err := r.ver.Hash(ctx, pw, r.o.Params)
	if errors.Is(err, credential.ErrBusy) {
		return "", ErrBusy
	}
	return h, err
}

func (r *Registry) verify(ctx context.Context, pw, hash string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, hashWait)
	defer cancel()
	ok, err := r.ver.Check(ctx, pw, hash)
	if errors.Is(err, credential.ErrBusy) {
		return false, ErrBusy
	}
	return ok && err == nil, nil
}

func (r *Registry) dummy(ctx context.Context, pw string) error {
	ctx, cancel := context.WithTimeout(ctx, hashWait)
	defer cancel()
	if errors.Is(r.ver.Dummy(ctx, pw), credential.ErrBusy) {
		return ErrBusy
	}
	return nil
}

// hashWait is how long a registration waits for a worker before ErrBusy.
const hashWait = 5 * time.Second

// Grant is what an admin's confirmation gives the new user.
type Grant struct {
	MQTTPublishPrefix string            `json:"mqttPublishPrefix"`
	Roles             []string          `json:"roles"` // role IDs
	GrantTypes        []store.GrantType `json:"grantTypes"`
	Permissions       []acl.Permission  `json:"initialPermissions"`
	// RoleNames are roles by name (auto-grant configuration).
	RoleNames []string `json:"-"`
}

// Confirm grants the pending request of username: the user is created with
// the credential the device registered (hashed password, the certificate
// signed from its CSR, or the certificate it connected with) and only what
// g gives it. The roles and permissions a device asked for are shown to
// the admin but never granted by themselves.
func (r *Registry) Confirm(ctx context.Context, username string, g Grant) (store.User, error) {
	q, err := r.st.RegistryRequest(ctx, username)
	if err != nil {
		return store.User{}, err
	}
	if q.Granted {
		return store.User{}, fmt.Errorf("%w: the request of %q is already granted", ErrConflict, username)
	}
	// The name becomes a user now: a request stored before today's
	// username rules must meet them too.
	if err := credential.ValidUsername(q.Username); err != nil {
		return store.User{}, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	roles := slices.Clone(g.Roles)
	for _, name := range g.RoleNames {
		ro, err := r.st.RoleByName(ctx, name)
		if err != nil {
			return store.User{}, fmt.Errorf("auto-grant role %q: %w", name, err)
		}
		roles = append(roles, ro.ID)
	}
	for _, id := range roles {
		ro, err := r.st.Role(ctx, id)
		if err != nil {
			return store.User{}, fmt.Errorf("role %q: %w", id, err)
		}
		if ro.OwnerID != "" {
			return store.User{}, fmt.Errorf("%w: role %q is another user's own role", ErrConflict, ro.Name)
		}
	}
	now := r.o.Now()
	u := store.User{Username: q.Username, PasswordHash: q.PasswordHash, MQTTPublishPrefix: g.MQTTPublishPrefix,
		IdentityProvider: "local", GrantTypes: g.GrantTypes, Roles: roles}
	var certPEM []byte
	switch {
	case len(q.CSR) > 0:
		csr, err := pki.ParseCSR(q.CSR)
		if err != nil {
			return store.User{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		cert, pemBytes, err := r.o.CA.SignCSR(csr, q.Username, r.o.CertLifetime)
		if err != nil {
			return store.User{}, err
		}
		certPEM = pemBytes
		u.Certificates = []store.Certificate{{Fingerprint: pki.Fingerprint(cert.Raw), CreatedAt: now, ExpiresAt: cert.NotAfter}}
	case q.Fingerprint != "": // implicit flow with a client certificate
		u.Certificates = []store.Certificate{{Fingerprint: q.Fingerprint, CreatedAt: now}}
	}
	if u.GrantTypes == nil {
		if u.PasswordHash != "" {
			u.GrantTypes = append(u.GrantTypes, store.GrantType{Method: store.GrantPassword})
		}
		if len(u.Certificates) > 0 {
			u.GrantTypes = append(u.GrantTypes, store.GrantType{Method: store.GrantCertificate})
		}
	}
	created, err := store.CreateUserWithRole(ctx, r.st, u, g.Permissions)
	if err != nil {
		return store.User{}, err
	}
	if q.Flow == FlowExplicit {
		// Kept so the device's next poll gets 201 and its certificate.
		_, err = r.st.UpdateRegistryRequest(ctx, username, func(x *store.RegistryRequest) error {
			x.Granted, x.Result, x.Timestamp = true, certPEM, now
			return nil
		})
	} else {
		err = r.st.DeleteRegistryRequest(ctx, username)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Warn("client registry: user created, request not updated", "user", username, "err", err)
	}
	r.log.Info("client registry request granted", "user", username, "flow", q.Flow)
	return created, nil
}

// Attempt is the registry's view of an MQTT CONNECT from an unknown user.
type Attempt int

// Outcomes of ConnectAttempt.
const (
	// NotRecorded: the registry is locked (or the attempt conflicts with
	// another request): an ordinary failed CONNECT.
	NotRecorded Attempt = iota
	// Pending: the attempt is recorded (or matches a pending request); the
	// CONNECT is refused until an admin confirms.
	Pending
	// Granted: auto-grant created the user; authenticate the CONNECT again.
	Granted
)

// ConnectAttempt records a CONNECT of an unknown username while the
// registry is open (Connectware's implicit flow): the password is hashed
// at once, or the verified client certificate's fingerprint is kept. A
// second attempt for a pending username is not recorded again.
func (r *Registry) ConnectAttempt(ctx context.Context, username string, password []byte, cert *x509.Certificate) Attempt {
	if credential.ValidUsername(username) != nil || (len(password) == 0 && cert == nil) {
		return NotRecorded
	}
	if q, err := r.st.RegistryRequest(ctx, username); err == nil {
		if q.Flow == FlowImplicit && !q.Granted {
			return Pending
		}
		return NotRecorded
	}
	if open, err := r.open(ctx); err != nil || !open {
		return NotRecorded
	}
	if r.roomForOne(ctx) != nil {
		return NotRecorded
	}
	q := store.RegistryRequest{Username: username, Flow: FlowImplicit, Timestamp: r.o.Now(), Context: "MQTT CONNECT"}
	if cert != nil && cert.Subject.CommonName == username {
		q.CredentialType, q.Fingerprint = CredentialCertificate, pki.Fingerprint(cert.Raw)
	} else if len(password) > 0 {
		if r.o.Policy.Check(string(password)) != nil {
			return NotRecorded
		}
		hash, err := r.hash(ctx, string(password))
		if err != nil {
			return NotRecorded
		}
		q.CredentialType, q.PasswordHash = CredentialPassword, hash
	} else {
		return NotRecorded
	}
	if _, err := r.st.CreateRegistryRequest(ctx, q); err != nil {
		return NotRecorded
	}
	r.log.Info("client registry request", "user", username, "flow", q.Flow, "credential", q.CredentialType)
	if len(r.o.AutoGrantRoles) > 0 {
		if _, err := r.Confirm(ctx, username, Grant{RoleNames: r.o.AutoGrantRoles}); err != nil {
			r.log.Warn("client registry auto-grant failed", "user", username, "err", err)
			return Pending
		}
		return Granted
	}
	return Pending
}
