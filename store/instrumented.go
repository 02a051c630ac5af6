package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPingInterval is how often MonitorPing checks the backing service
// when given no interval.
const DefaultPingInterval = 10 * time.Second

// Instrumented is a Store that records Prometheus metrics about the Store
// it wraps (docs/metrics.md): the latency of every call by operation,
// failed calls by operation and kind, and whether the backing service
// answers Ping. Label values are operation names and error kinds only,
// never keys, usernames or IDs.
//
// Store is embedded, so a method added to the interface later passes
// through uninstrumented rather than breaking the build; Watch and Close
// are passed through on purpose (a feed lives for hours, Close once).
type Instrumented struct {
	Store

	latency  [opCount]prometheus.Observer
	failures *prometheus.CounterVec
	up       prometheus.Gauge
}

// Operations, as the "operation" label names them; indexed by op.
type op int

const (
	opCreateUser op = iota
	opUser
	opUserByUsername
	opUsers
	opUpdateUser
	opDeleteUser
	opRehashPassword
	opCreateRole
	opRole
	opRoleByName
	opRoles
	opUpdateRole
	opDeleteRole
	opAtomic
	opCreateToken
	opToken
	opUserTokens
	opDeleteToken
	opDeleteUserTokens
	opDeleteUserTokensWhere
	opCreateRegistryRequest
	opRegistryRequest
	opRegistryRequests
	opUpdateRegistryRequest
	opDeleteRegistryRequest
	opClearRegistryRequests
	opSetting
	opPutSetting
	opCreateSetting
	opDeleteSetting
	opSettingKeys
	opVersion
	opSnapshot
	opRestore
	opPing
	opCount
)

var opNames = [opCount]string{
	opCreateUser:            "create_user",
	opUser:                  "user",
	opUserByUsername:        "user_by_username",
	opUsers:                 "users",
	opUpdateUser:            "update_user",
	opDeleteUser:            "delete_user",
	opRehashPassword:        "rehash_password",
	opCreateRole:            "create_role",
	opRole:                  "role",
	opRoleByName:            "role_by_name",
	opRoles:                 "roles",
	opUpdateRole:            "update_role",
	opDeleteRole:            "delete_role",
	opAtomic:                "atomic",
	opCreateToken:           "create_token",
	opToken:                 "token",
	opUserTokens:            "user_tokens",
	opDeleteToken:           "delete_token",
	opDeleteUserTokens:      "delete_user_tokens",
	opDeleteUserTokensWhere: "delete_user_tokens_where",
	opCreateRegistryRequest: "create_registry_request",
	opRegistryRequest:       "registry_request",
	opRegistryRequests:      "registry_requests",
	opUpdateRegistryRequest: "update_registry_request",
	opDeleteRegistryRequest: "delete_registry_request",
	opClearRegistryRequests: "clear_registry_requests",
	opSetting:               "setting",
	opPutSetting:            "put_setting",
	opCreateSetting:         "create_setting",
	opDeleteSetting:         "delete_setting",
	opSettingKeys:           "setting_keys",
	opVersion:               "version",
	opSnapshot:              "snapshot",
	opRestore:               "restore",
	opPing:                  "ping",
}

// latencyBuckets span a Redis round trip on a LAN (~100 µs) to a bbolt
// commit on a slow disk or a Redis under load (seconds).
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// Instrument wraps s. backend names the implementation ("bolt", "redis")
// in the "backend" label of warden_store_up. The metrics are registered
// with reg, and with them the store's own (a Redis store's change-feed
// errors, warden_store_feed_errors_total); wrapping a second store on the
// same registry fails, since its series would mix with the first's.
func Instrument(s Store, backend string, reg prometheus.Registerer) (*Instrumented, error) {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "warden_store_operation_duration_seconds",
		Help:    "Latency of store calls, by operation, failed ones included.",
		Buckets: latencyBuckets,
	}, []string{"operation"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_store_errors_total",
		Help: "Store calls that failed, by operation and kind (unavailable, closed, timeout, canceled, other); not-found, conflict and invalid answers are not failures.",
	}, []string{"operation", "kind"})
	up := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "warden_store_up",
		Help:        "1 if the last Ping of the store's backing service (Redis, or the bbolt file) succeeded, else 0.",
		ConstLabels: prometheus.Labels{"backend": backend},
	})
	cs := []prometheus.Collector{latency, errs, up}
	if own, ok := s.(interface{ collectors() []prometheus.Collector }); ok {
		cs = append(cs, own.collectors()...) // the Redis feed's errors
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("store: register metrics: %w", err)
		}
	}
	in := &Instrumented{Store: s, failures: errs, up: up}
	for o, name := range opNames {
		in.latency[o] = latency.WithLabelValues(name)
	}
	// Until the first Ping says otherwise: Open* checked the connection.
	up.Set(1)
	return in, nil
}

// done records one call of o that began at start.
func (s *Instrumented) done(o op, start time.Time, err error) {
	s.latency[o].Observe(time.Since(start).Seconds())
	if kind := errorKind(err); kind != "" {
		s.failures.WithLabelValues(opNames[o], kind).Inc()
	}
}

// errorKind classifies a failed call; "" for success and for the answers
// a caller expects in normal operation.
func errorKind(err error) string {
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrInvalid):
		return ""
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}

// Ping checks the backing service and records the answer in
// warden_store_up.
func (s *Instrumented) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.done(opPing, start, err)
	if err != nil {
		s.up.Set(0)
	} else {
		s.up.Set(1)
	}
	return err
}

// MonitorPing pings the store every interval (DefaultPingInterval when
// zero or less), each ping bounded by the interval, until ctx is done, so
// warden_store_up follows Redis even while no request touches the store.
func (s *Instrumented) MonitorPing(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPingInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, interval)
			_ = s.Ping(pctx)
			cancel()
		}
	}
}

// CreateUser implements Store.
func (s *Instrumented) CreateUser(ctx context.Context, u User) (User, error) {
	start := time.Now()
	u, err := s.Store.CreateUser(ctx, u)
	s.done(opCreateUser, start, err)
	return u, err
}

// User implements Store.
func (s *Instrumented) User(ctx context.Context, id string) (User, error) {
	start := time.Now()
	u, err := s.Store.User(ctx, id)
	s.done(opUser, start, err)
	return u, err
}

// UserByUsername implements Store.
func (s *Instrumented) UserByUsername(ctx context.Context, username string) (User, error) {
	start := time.Now()
	u, err := s.Store.UserByUsername(ctx, username)
	s.done(opUserByUsername, start, err)
	return u, err
}

// Users implements Store.
func (s *Instrumented) Users(ctx context.Context) ([]User, error) {
	start := time.Now()
	us, err := s.Store.Users(ctx)
	s.done(opUsers, start, err)
	return us, err
}

// UpdateUser implements Store.
func (s *Instrumented) UpdateUser(ctx context.Context, id string, fn func(*User) error) (User, error) {
	start := time.Now()
	u, err := s.Store.UpdateUser(ctx, id, fn)
	s.done(opUpdateUser, start, err)
	return u, err
}

// RehashPassword implements Store.
func (s *Instrumented) RehashPassword(ctx context.Context, id, oldHash, newHash string) error {
	start := time.Now()
	err := s.Store.RehashPassword(ctx, id, oldHash, newHash)
	s.done(opRehashPassword, start, err)
	return err
}

// DeleteUser implements Store.
func (s *Instrumented) DeleteUser(ctx context.Context, id string) error {
	start := time.Now()
	err := s.Store.DeleteUser(ctx, id)
	s.done(opDeleteUser, start, err)
	return err
}

// CreateRole implements Store.
func (s *Instrumented) CreateRole(ctx context.Context, r Role) (Role, error) {
	start := time.Now()
	r, err := s.Store.CreateRole(ctx, r)
	s.done(opCreateRole, start, err)
	return r, err
}

// Role implements Store.
func (s *Instrumented) Role(ctx context.Context, id string) (Role, error) {
	start := time.Now()
	r, err := s.Store.Role(ctx, id)
	s.done(opRole, start, err)
	return r, err
}

// RoleByName implements Store.
func (s *Instrumented) RoleByName(ctx context.Context, name string) (Role, error) {
	start := time.Now()
	r, err := s.Store.RoleByName(ctx, name)
	s.done(opRoleByName, start, err)
	return r, err
}

// Roles implements Store.
func (s *Instrumented) Roles(ctx context.Context) ([]Role, error) {
	start := time.Now()
	rs, err := s.Store.Roles(ctx)
	s.done(opRoles, start, err)
	return rs, err
}

// UpdateRole implements Store.
func (s *Instrumented) UpdateRole(ctx context.Context, id string, fn func(*Role) error) (Role, error) {
	start := time.Now()
	r, err := s.Store.UpdateRole(ctx, id, fn)
	s.done(opUpdateRole, start, err)
	return r, err
}

// DeleteRole implements Store.
func (s *Instrumented) DeleteRole(ctx context.Context, id string) error {
	start := time.Now()
	err := s.Store.DeleteRole(ctx, id)
	s.done(opDeleteRole, start, err)
	return err
}

// Atomic implements Store; one observation covers the whole transaction.
func (s *Instrumented) Atomic(ctx context.Context, fn func(Tx) error) error {
	start := time.Now()
	err := s.Store.Atomic(ctx, fn)
	s.done(opAtomic, start, err)
	return err
}

// CreateToken implements Store.
func (s *Instrumented) CreateToken(ctx context.Context, t Token) (Token, error) {
	start := time.Now()
	t, err := s.Store.CreateToken(ctx, t)
	s.done(opCreateToken, start, err)
	return t, err
}

// Token implements Store.
func (s *Instrumented) Token(ctx context.Context, id string) (Token, error) {
	start := time.Now()
	t, err := s.Store.Token(ctx, id)
	s.done(opToken, start, err)
	return t, err
}

// UserTokens implements Store.
func (s *Instrumented) UserTokens(ctx context.Context, userID string) ([]Token, error) {
	start := time.Now()
	ts, err := s.Store.UserTokens(ctx, userID)
	s.done(opUserTokens, start, err)
	return ts, err
}

// DeleteToken implements Store.
func (s *Instrumented) DeleteToken(ctx context.Context, id string) error {
	start := time.Now()
	err := s.Store.DeleteToken(ctx, id)
	s.done(opDeleteToken, start, err)
	return err
}

// DeleteUserTokens implements Store.
func (s *Instrumented) DeleteUserTokens(ctx context.Context, userID string) (int, error) {
	start := time.Now()
	n, err := s.Store.DeleteUserTokens(ctx, userID)
	s.done(opDeleteUserTokens, start, err)
	return n, err
}

// DeleteUserTokensWhere implements Store.
func (s *Instrumented) DeleteUserTokensWhere(ctx context.Context, userID string, match func(Token) bool) (int, error) {
	start := time.Now()
	n, err := s.Store.DeleteUserTokensWhere(ctx, userID, match)
	s.done(opDeleteUserTokensWhere, start, err)
	return n, err
}

// CreateRegistryRequest implements Store.
func (s *Instrumented) CreateRegistryRequest(ctx context.Context, r RegistryRequest) (RegistryRequest, error) {
	start := time.Now()
	r, err := s.Store.CreateRegistryRequest(ctx, r)
	s.done(opCreateRegistryRequest, start, err)
	return r, err
}

// RegistryRequest implements Store.
func (s *Instrumented) RegistryRequest(ctx context.Context, username string) (RegistryRequest, error) {
	start := time.Now()
	r, err := s.Store.RegistryRequest(ctx, username)
	s.done(opRegistryRequest, start, err)
	return r, err
}

// RegistryRequests implements Store.
func (s *Instrumented) RegistryRequests(ctx context.Context) ([]RegistryRequest, error) {
	start := time.Now()
	rs, err := s.Store.RegistryRequests(ctx)
	s.done(opRegistryRequests, start, err)
	return rs, err
}

// UpdateRegistryRequest implements Store.
func (s *Instrumented) UpdateRegistryRequest(ctx context.Context, username string, fn func(*RegistryRequest) error) (RegistryRequest, error) {
	start := time.Now()
	r, err := s.Store.UpdateRegistryRequest(ctx, username, fn)
	s.done(opUpdateRegistryRequest, start, err)
	return r, err
}

// DeleteRegistryRequest implements Store.
func (s *Instrumented) DeleteRegistryRequest(ctx context.Context, username string) error {
	start := time.Now()
	err := s.Store.DeleteRegistryRequest(ctx, username)
	s.done(opDeleteRegistryRequest, start, err)
	return err
}

// ClearRegistryRequests implements Store.
func (s *Instrumented) ClearRegistryRequests(ctx context.Context) error {
	start := time.Now()
	err := s.Store.ClearRegistryRequests(ctx)
	s.done(opClearRegistryRequests, start, err)
	return err
}

// Setting implements Store.
func (s *Instrumented) Setting(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	v, err := s.Store.Setting(ctx, key)
	s.done(opSetting, start, err)
	return v, err
}

// PutSetting implements Store.
func (s *Instrumented) PutSetting(ctx context.Context, key string, value []byte) error {
	start := time.Now()
	err := s.Store.PutSetting(ctx, key, value)
	s.done(opPutSetting, start, err)
	return err
}

// CreateSetting implements Store.
func (s *Instrumented) CreateSetting(ctx context.Context, key string, value []byte) error {
	start := time.Now()
	err := s.Store.CreateSetting(ctx, key, value)
	s.done(opCreateSetting, start, err)
	return err
}

// DeleteSetting implements Store.
func (s *Instrumented) DeleteSetting(ctx context.Context, key string) error {
	start := time.Now()
	err := s.Store.DeleteSetting(ctx, key)
	s.done(opDeleteSetting, start, err)
	return err
}

// SettingKeys implements Store.
func (s *Instrumented) SettingKeys(ctx context.Context, prefix string) ([]string, error) {
	start := time.Now()
	keys, err := s.Store.SettingKeys(ctx, prefix)
	s.done(opSettingKeys, start, err)
	return keys, err
}

// Version implements Store.
func (s *Instrumented) Version(ctx context.Context) (uint64, error) {
	start := time.Now()
	v, err := s.Store.Version(ctx)
	s.done(opVersion, start, err)
	return v, err
}

// Snapshot implements Store.
func (s *Instrumented) Snapshot(ctx context.Context) (Snapshot, error) {
	start := time.Now()
	snap, err := s.Store.Snapshot(ctx)
	s.done(opSnapshot, start, err)
	return snap, err
}

// Restore implements Store.
func (s *Instrumented) Restore(ctx context.Context, snap Snapshot) error {
	start := time.Now()
	err := s.Store.Restore(ctx, snap)
	s.done(opRestore, start, err)
	return err
}

// RestoreKeeping implements Store; it is timed as a restore.
func (s *Instrumented) RestoreKeeping(ctx context.Context, snap Snapshot, keep []string) error {
	start := time.Now()
	err := s.Store.RestoreKeeping(ctx, snap, keep)
	s.done(opRestore, start, err)
	return err
}
