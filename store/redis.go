package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Redis layout. Every key carries the hash tag {warden}, so on a Cluster
// all of them live in one slot and a Lua script can touch them atomically.
//
//	{warden}:b:<bucket>  hash: the bucket's keys and values
//	{warden}:r:<bucket>  counter: bumped by every write to the bucket
//	{warden}:buckets     set: names of buckets that may hold data
//	{warden}:version     counter: the model version, +1 per commit
//	{warden}:model       string: the model's identity, a random ID set
//	                     when the model is first opened (or restored)
//	{warden}:lost        string: the identity of a model that running
//	                     nodes found gone; set until a restore
//	{warden}:events      pub/sub channel: {"v":<version>,"e":[events],
//	                     "m":<model>} ("r":true marks a restore)
const redisPrefix = "{warden}:"

// A Redis that comes back empty (restarted without persistence, or
// flushed) looks like a new, empty model; serving it would drop every
// user. So the model carries an identity ({warden}:model): a node learns
// it when it opens the store, every read and commit checks it in the same
// round trip, and polls and readiness probes check it too. When it is
// gone (or another model's), the node does not follow: it enters the
// lost state, in which every operation but a restore fails with
// ErrModelLost (a kind of ErrUnavailable, so connected clients and cached
// users keep being served as during an outage), logs an error that says
// what happened and how to restore, and writes {warden}:lost so that a
// node started meanwhile does not bootstrap a fresh model over the lost
// one. A restore (load) re-creates the identity (the lost one, so every
// node recognises it) and every node leaves the lost state with a reset.
// Only a Redis that holds neither key is a first start.

// ErrModelLost: the Redis store no longer holds the model this node
// served: Redis was flushed, restarted without persistence, or now holds
// another warden model. It wraps ErrUnavailable: reads and writes fail,
// caches keep serving. Restore a backup to recover (RestoreHint).
var ErrModelLost = fmt.Errorf("%w: Redis lost warden's data", ErrUnavailable)

// RestoreHint says how an operator recovers from ErrModelLost.
const RestoreHint = "restore a backup into this Redis with `warden restore FILE` (WARDEN_REDIS_URL set to it); " +
	"every node recovers on its own. To start over with an empty model instead, stop every node and delete the key {warden}:lost"

// lostState is why and since when a node considers its model lost.
type lostState struct {
	why   string
	since time.Time
}

// Feed tuning. pollInterval bounds how long a node that silently lost
// pub/sub messages takes to notice (two polls) and reset its caches.
const (
	pollInterval = 2 * time.Second
	maxAttempts  = 200
)

// RedisOptions tune a Redis store.
type RedisOptions struct {
	// Logger hears what the store finds on its own: that Redis lost
	// warden's data, and that it was restored. nil: slog.Default().
	Logger *slog.Logger
}

// OpenRedis connects to Redis and returns a Store on it. The URL is
// redis:// or rediss:// as go-redis parses it; `?master_name=NAME` (with
// `addr=` for more sentinels) selects Sentinel, `addr=` alone selects a
// Cluster. The connection is checked before OpenRedis returns.
func OpenRedis(ctx context.Context, rawURL string) (Store, error) {
	return OpenRedisWith(ctx, rawURL, RedisOptions{})
}

// OpenRedisWith is OpenRedis with options.
func OpenRedisWith(ctx context.Context, rawURL string, o RedisOptions) (Store, error) {
	client, err := redisClient(rawURL)
	if err != nil {
		return nil, err
	}
	s, err := newRedisStore(ctx, client, o)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return s, nil
}

// RedisURLKind reports which deployment a URL selects ("server",
// "sentinel" or "cluster"), or an error that says what is wrong with it.
func RedisURLKind(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("redis url: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return "", fmt.Errorf("redis url: scheme must be redis:// or rediss://, got %q", u.Scheme)
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		return "sentinel", nil
	case q.Has("addr"):
		return "cluster", nil
	}
	return "server", nil
}

func redisClient(rawURL string) (redis.UniversalClient, error) {
	kind, err := RedisURLKind(rawURL)
	if err != nil {
		return nil, err
	}
	// Short timeouts: an unreachable Redis must surface as ErrUnavailable
	// within seconds, not hang CONNECT handling.
	fix := func(dial, read, write *time.Duration) {
		for _, d := range []*time.Duration{dial, read, write} {
			if *d == 0 {
				*d = 2 * time.Second
			}
		}
	}
	switch kind {
	case "sentinel":
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		fix(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout)
		return redis.NewFailoverClient(o), nil
	case "cluster":
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		fix(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout)
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	fix(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout)
	return redis.NewClient(o), nil
}

// redisBackend implements backend with optimistic transactions: reads go
// to Redis and are remembered; writes are buffered; the commit is one Lua
// script that checks nothing read has changed, applies the writes, bumps
// the version and publishes the events, or does nothing so the
// transaction reruns.
type redisBackend struct {
	client redis.UniversalClient
	feed   *feed
	closed atomic.Bool
	cancel context.CancelFunc
	ps     *redis.PubSub
	done   chan struct{}

	mu   sync.Mutex // orders delivery to the feed
	last uint64     // version of the last delivered commit
	pend uint64     // version seen by a poll but not yet delivered

	log *slog.Logger
	// feedErrors counts what listen and resync could not do
	// (warden_store_feed_errors_total, by reason); feedLog lets one line
	// per reason through every redisLogEvery.
	feedErrors *prometheus.CounterVec
	feedLog    *logLimiter
	// model is the identity of the model this node serves; lost is set
	// while Redis does not hold it (see ErrModelLost). gen counts the
	// identities adopted, so a read that began before a restore cannot
	// declare the restored model lost.
	model atomic.Pointer[string]
	lost  atomic.Pointer[lostState]
	gen   atomic.Uint64
}

// openScript returns the model's identity and whether it is lost: the
// existing identity; else, when running nodes recorded a lost model, that
// one (lost); else it creates the identity ARGV[2] (a first start, or a
// store written by a release without identities).
var openScript = redis.NewScript(`
local p = ARGV[1]
local m = redis.call('GET', p..'model')
if m then return {m, 0} end
local l = redis.call('GET', p..'lost')
if l then return {l, 1} end
redis.call('SET', p..'model', ARGV[2])
return {ARGV[2], 0}
`)

// newRedisStore returns a Store on client, which it owns: closing the
// Store closes the client.
func newRedisStore(ctx context.Context, client redis.UniversalClient, o RedisOptions) (Store, error) {
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("open redis store: %w", wrapRedis(err))
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f := newFeed()
	b := &redisBackend{client: client, feed: f, done: make(chan struct{}), log: o.Logger,
		feedErrors: newFeedErrors(), feedLog: newLogLimiter(redisLogEvery, time.Now)}
	lctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	ps := client.Subscribe(lctx, redisPrefix+"events")
	// Subscribe first, then read the version: every commit after that
	// version reaches us as a message.
	if _, err := ps.Receive(ctx); err != nil {
		cancel()
		_ = ps.Close()
		return nil, fmt.Errorf("open redis store: subscribe: %w", wrapRedis(err))
	}
	res, err := openScript.Run(ctx, client, []string{redisPrefix + "model"}, redisPrefix, NewID()).Slice()
	if err != nil {
		cancel()
		_ = ps.Close()
		return nil, fmt.Errorf("open redis store: %w", wrapRedis(err))
	}
	m, _ := res[0].(string)
	b.model.Store(&m)
	if lost, _ := res[1].(int64); lost == 1 {
		b.markLost(b.gen.Load(), "running nodes found this Redis emptied (flushed, or restarted without persistence) and no backup has been restored since")
	}
	v, err := b.rawVersion(ctx)
	if err != nil {
		cancel()
		_ = ps.Close()
		return nil, fmt.Errorf("open redis store: %w", err)
	}
	b.last = v
	b.ps = ps
	go b.listen(lctx, ps)
	return newModel(b, f), nil
}

// ---- the model's identity ----

// knownModel is the identity of the model this node serves.
func (b *redisBackend) knownModel() string { return *b.model.Load() }

// lostErr describes a lost state for callers.
func lostErr(l *lostState) error {
	return fmt.Errorf("%w since %s: %s; %s", ErrModelLost, l.since.UTC().Format(time.RFC3339), l.why, RestoreHint)
}

// markLost enters the lost state, once, unless the model was restored
// (gen moved on) since the observation began. It returns the error to
// give the caller.
func (b *redisBackend) markLost(gen uint64, why string) error {
	if b.gen.Load() == gen && b.lost.CompareAndSwap(nil, &lostState{why: why, since: time.Now()}) {
		b.log.Error("Redis lost warden's data: this node keeps its connected MQTT clients and serves cached users, refuses every change (503) and reports not ready until a backup is restored",
			"store", "redis", "model", b.knownModel(), "reason", why, "restore", RestoreHint)
	}
	if l := b.lost.Load(); l != nil {
		return lostErr(l)
	}
	return fmt.Errorf("%w: the model changed while it was read; retry", ErrUnavailable)
}

// checkModel compares an identity read from Redis with the node's: it
// returns nil when they agree, else enters the lost state.
func (b *redisBackend) checkModel(gen uint64, m *string) error {
	known := b.knownModel()
	switch {
	case m == nil:
		return b.markLost(gen, "the model key {warden}:model is gone: Redis was flushed or restarted without persistence")
	case *m != known:
		return b.markLost(gen, fmt.Sprintf("Redis holds another warden model (%s) than the one this node served (%s): it was emptied and another node started a new one", *m, known))
	}
	return nil
}

// adoptLocked makes m the served model and leaves the lost state (a restore
// happened). b.mu must be held.
func (b *redisBackend) adoptLocked(m string) {
	if m != "" && m != b.knownModel() {
		b.model.Store(&m)
		b.gen.Add(1)
	}
	if l := b.lost.Swap(nil); l != nil {
		b.gen.Add(1)
		b.log.Info("Redis store restored: serving the restored model again", "store", "redis", "model", b.knownModel(), "lost_since", l.since.UTC().Format(time.RFC3339))
	}
}

// markTombstone records, for nodes that start meanwhile, that the model
// this node served is lost, unless Redis holds a model again.
var markTombstone = redis.NewScript(`
local p = ARGV[1]
if redis.call('EXISTS', p..'model') == 0 then redis.call('SET', p..'lost', ARGV[2], 'NX') end
return 0
`)

func (b *redisBackend) tombstone(ctx context.Context) {
	_ = markTombstone.Run(ctx, b.client, []string{redisPrefix + "model"}, redisPrefix, b.knownModel()).Err()
}

// ---- transactions ----

// redisOpcode says what one check or one write of a transaction is, in
// commitScript's arguments; the letters are the ones the script tests.
type redisOpcode string

// Checks (redisCheck.kind): what the commit asserts still holds.
const (
	checkAbsent   redisOpcode = "a" // the key is absent
	checkValue    redisOpcode = "v" // the key holds the value read
	checkRevision redisOpcode = "r" // the bucket's revision is the one read
)

// Writes (redisOp.kind): what the commit applies.
const (
	writePut  redisOpcode = "p" // set the key
	writeDel  redisOpcode = "d" // delete the key
	writeDrop redisOpcode = "x" // delete the whole bucket
)

type redisCheck struct {
	kind             redisOpcode
	bucket, key, val string
}

type redisOp struct {
	kind             redisOpcode
	bucket, key, val string
}

type redisTxn struct {
	ctx    context.Context
	b      *redisBackend
	gen    uint64 // b.gen when the transaction began
	checks []redisCheck
	ops    []redisOp
	events []Event
	// reads caches what this transaction saw, so it reads one state.
	fields  map[string]map[string]*string // bucket -> key -> value (nil: absent)
	buckets map[string]map[string]string  // bucket -> whole content
	// overlay holds buffered writes: key -> value (nil: deleted).
	overlay map[string]map[string]*string
	dropped map[string]bool
}

func (b *redisBackend) newTxn(ctx context.Context) *redisTxn {
	return &redisTxn{
		ctx: ctx, b: b, gen: b.gen.Load(),
		fields:  map[string]map[string]*string{},
		buckets: map[string]map[string]string{},
		overlay: map[string]map[string]*string{},
		dropped: map[string]bool{},
	}
}

// stored reads a key as committed, remembering it for the commit check.
func (t *redisTxn) stored(bucket, key string) (*string, error) {
	if all, ok := t.buckets[bucket]; ok {
		if v, ok := all[key]; ok {
			return &v, nil
		}
		return nil, nil
	}
	if f, ok := t.fields[bucket]; ok {
		if v, ok := f[key]; ok {
			return v, nil
		}
	}
	var get *redis.StringCmd
	if err := t.readChecked(func(p redis.Pipeliner) { get = p.HGet(t.ctx, redisPrefix+"b:"+bucket, key) }); err != nil {
		return nil, err
	}
	raw, err := get.Result()
	var v *string
	switch {
	case errors.Is(err, redis.Nil):
		t.checks = append(t.checks, redisCheck{kind: checkAbsent, bucket: bucket, key: key})
	case err != nil:
		return nil, wrapRedis(err)
	default:
		v = &raw
		t.checks = append(t.checks, redisCheck{kind: checkValue, bucket: bucket, key: key, val: raw})
	}
	if t.fields[bucket] == nil {
		t.fields[bucket] = map[string]*string{}
	}
	t.fields[bucket][key] = v
	return v, nil
}

// readChecked sends the reads queue adds and a GET of the model's
// identity in one round trip, and checks the identity. It is read after
// the values: if it is still there, they were read from the model this
// node serves.
func (t *redisTxn) readChecked(queue func(redis.Pipeliner)) error {
	var model *redis.StringCmd
	_, err := t.b.client.Pipelined(t.ctx, func(p redis.Pipeliner) error {
		queue(p)
		model = p.Get(t.ctx, redisPrefix+"model")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return wrapRedis(err)
	}
	m, err := modelOf(model)
	if err != nil {
		return err
	}
	return t.b.checkModel(t.gen, m)
}

func (t *redisTxn) get(bucket, key string) ([]byte, error) {
	if o, ok := t.overlay[bucket]; ok {
		if v, ok := o[key]; ok {
			if v == nil {
				return nil, nil
			}
			return []byte(*v), nil
		}
	}
	if t.dropped[bucket] {
		return nil, nil
	}
	v, err := t.stored(bucket, key)
	if err != nil || v == nil {
		return nil, err
	}
	return []byte(*v), nil
}

// storedBucket reads a whole bucket and its revision in one MULTI, and
// remembers the revision: any later write to the bucket fails the commit.
func (t *redisTxn) storedBucket(bucket string) (map[string]string, error) {
	if all, ok := t.buckets[bucket]; ok {
		return all, nil
	}
	var all *redis.MapStringStringCmd
	var rev, model *redis.StringCmd
	_, err := t.b.client.TxPipelined(t.ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(t.ctx, redisPrefix+"b:"+bucket)
		rev = p.Get(t.ctx, redisPrefix+"r:"+bucket)
		model = p.Get(t.ctx, redisPrefix+"model")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapRedis(err)
	}
	id, err := modelOf(model)
	if err != nil {
		return nil, err
	}
	if err := t.b.checkModel(t.gen, id); err != nil {
		return nil, err
	}
	r, err := rev.Result()
	if errors.Is(err, redis.Nil) {
		r = "0"
	} else if err != nil {
		return nil, wrapRedis(err)
	}
	m, err := all.Result()
	if err != nil {
		return nil, wrapRedis(err)
	}
	t.checks = append(t.checks, redisCheck{kind: checkRevision, bucket: bucket, val: r})
	t.buckets[bucket] = m
	return m, nil
}

func (t *redisTxn) forEach(bucket string, fn func(string, []byte) error) error {
	merged := map[string]string{}
	if !t.dropped[bucket] {
		all, err := t.storedBucket(bucket)
		if err != nil {
			return err
		}
		for k, v := range all {
			merged[k] = v
		}
	}
	for k, v := range t.overlay[bucket] {
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = *v
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(k, []byte(merged[k])); err != nil {
			return err
		}
	}
	return nil
}

// keys reads only the bucket's keys (HKEYS), so listing the node
// lists among the settings does not fetch every setting's value.
func (t *redisTxn) keys(bucket, prefix string) ([]string, error) {
	set := map[string]bool{}
	if !t.dropped[bucket] {
		stored, err := t.storedKeys(bucket)
		if err != nil {
			return nil, err
		}
		for _, k := range stored {
			set[k] = true
		}
	}
	for k, v := range t.overlay[bucket] {
		set[k] = v != nil
	}
	var out []string
	for k, present := range set {
		if present && strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// storedKeys returns the keys of a bucket as committed: from the whole
// bucket if this transaction read it, else with HKEYS, the model's
// identity checked in the same round trip.
func (t *redisTxn) storedKeys(bucket string) ([]string, error) {
	if all, ok := t.buckets[bucket]; ok {
		out := make([]string, 0, len(all))
		for k := range all {
			out = append(out, k)
		}
		return out, nil
	}
	var keys *redis.StringSliceCmd
	if err := t.readChecked(func(p redis.Pipeliner) { keys = p.HKeys(t.ctx, redisPrefix+"b:"+bucket) }); err != nil {
		return nil, err
	}
	out, err := keys.Result()
	if err != nil {
		return nil, wrapRedis(err)
	}
	return out, nil
}

func (t *redisTxn) put(bucket, key string, val []byte) error {
	s := string(val)
	if t.overlay[bucket] == nil {
		t.overlay[bucket] = map[string]*string{}
	}
	t.overlay[bucket][key] = &s
	t.ops = append(t.ops, redisOp{kind: writePut, bucket: bucket, key: key, val: s})
	return nil
}

func (t *redisTxn) del(bucket, key string) error {
	if t.overlay[bucket] == nil {
		t.overlay[bucket] = map[string]*string{}
	}
	t.overlay[bucket][key] = nil
	t.ops = append(t.ops, redisOp{kind: writeDel, bucket: bucket, key: key})
	return nil
}

func (t *redisTxn) drop(bucket string) error {
	t.dropped[bucket] = true
	delete(t.overlay, bucket)
	t.ops = append(t.ops, redisOp{kind: writeDrop, bucket: bucket})
	return nil
}

func (t *redisTxn) emit(e Event) { t.events = append(t.events, e) }

// commitScript checks the model's identity and the transaction's reads,
// applies its writes, and publishes its events under a new version. It
// returns -2 when the identity is not ARGV[2] (the model was lost), 0
// when a read no longer holds, -1 when nothing was to be published, else
// the version. Each check and write is four arguments: its redisOpcode
// (checkAbsent, checkValue, checkRevision; writePut, writeDel, writeDrop),
// bucket, key and value.
var commitScript = redis.NewScript(`
local p = ARGV[1]
if redis.call('GET', p..'model') ~= ARGV[2] then return -2 end
local i = 3
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local t, b, k, v = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]; i = i + 4
  if t == 'a' then
    if redis.call('HEXISTS', p..'b:'..b, k) == 1 then return 0 end
  elseif t == 'v' then
    if redis.call('HGET', p..'b:'..b, k) ~= v then return 0 end
  else
    if (redis.call('GET', p..'r:'..b) or '0') ~= v then return 0 end
  end
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local t, b, k, v = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]; i = i + 4
  if t == 'p' then
    redis.call('HSET', p..'b:'..b, k, v)
    redis.call('SADD', p..'buckets', b)
  elseif t == 'd' then
    redis.call('HDEL', p..'b:'..b, k)
  else
    redis.call('DEL', p..'b:'..b)
    redis.call('SREM', p..'buckets', b)
  end
  redis.call('INCR', p..'r:'..b)
end
local ev = ARGV[i]
if ev == '' then return -1 end
local ver = redis.call('INCR', p..'version')
redis.call('PUBLISH', p..'events', '{"v":'..ver..',"e":'..ev..',"m":"'..ARGV[2]..'"}')
return ver
`)

// commit runs commitScript; ok is false when the transaction must rerun.
func (t *redisTxn) commit() (ver int64, ok bool, err error) {
	args := make([]any, 0, 5+4*len(t.checks)+4*len(t.ops))
	args = append(args, redisPrefix, t.b.knownModel(), len(t.checks))
	for _, c := range t.checks {
		args = append(args, string(c.kind), c.bucket, c.key, c.val) // go-redis encodes plain strings only
	}
	args = append(args, len(t.ops))
	for _, o := range t.ops {
		args = append(args, string(o.kind), o.bucket, o.key, o.val)
	}
	ev := ""
	if len(t.events) > 0 {
		raw, err := json.Marshal(t.events)
		if err != nil {
			return 0, false, err
		}
		ev = string(raw)
	}
	args = append(args, ev)
	res, err := commitScript.Run(t.ctx, t.b.client, []string{redisPrefix + "version"}, args...).Int64()
	if err != nil {
		return 0, false, wrapRedis(err)
	}
	if res == -2 {
		return 0, false, t.b.markLost(t.gen, "the model key {warden}:model is gone or changed: Redis was flushed or restarted without persistence")
	}
	return res, res != 0, nil
}

// check refuses an operation on a closed store or a lost model.
func (b *redisBackend) check(ctx context.Context) error {
	if err := b.checkOpen(ctx); err != nil {
		return err
	}
	if l := b.lost.Load(); l != nil {
		return lostErr(l)
	}
	return nil
}

// checkOpen is check for a restore, which a lost model allows.
func (b *redisBackend) checkOpen(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// modelOf returns a GET of the model's identity: nil when the key is
// absent, an error when Redis could not be asked.
func modelOf(c *redis.StringCmd) (*string, error) {
	v, err := c.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, wrapRedis(err)
	}
	return &v, nil
}

// retry runs one transaction attempt until it commits, backing off with
// jitter so contending writers spread out.
func (b *redisBackend) retry(ctx context.Context, attempt func() (bool, error)) error {
	for i := 0; i < maxAttempts; i++ {
		if err := b.check(ctx); err != nil {
			return err
		}
		ok, err := attempt()
		if err != nil || ok {
			return err
		}
		d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(i, 5)))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("%w: transaction still contended after %d attempts", ErrUnavailable, maxAttempts)
}

func (b *redisBackend) view(ctx context.Context, fn func(txn) error) error {
	return b.retry(ctx, func() (bool, error) {
		t := b.newTxn(ctx)
		if err := fn(t); err != nil {
			return false, err
		}
		// One read is consistent by itself; several are checked together
		// so a view never mixes two states (e.g. an index and a record).
		if len(t.checks) < 2 {
			return true, nil
		}
		t.ops, t.events = nil, nil
		_, ok, err := t.commit()
		return ok, err
	})
}

func (b *redisBackend) update(ctx context.Context, fn func(txn) error) error {
	return b.retry(ctx, func() (bool, error) {
		t := b.newTxn(ctx)
		if err := fn(t); err != nil {
			return false, err
		}
		if len(t.ops) == 0 && len(t.events) == 0 {
			return true, nil
		}
		ver, ok, err := t.commit()
		if ok && ver > 0 {
			for i := range t.events {
				t.events[i].Version = uint64(ver)
			}
			b.deliver(feedMessage{V: uint64(ver), E: t.events}, false)
		}
		return ok, err
	})
}

// ---- change feed ----

// deliver hands a commit's events to this node's consumers, in version
// order. Our own commits are delivered at once when they are next in
// line; otherwise the pub/sub message delivers them. fromFeed marks
// messages from pub/sub, which may also reveal a gap. A restore (m.R) is
// delivered as a reset whatever its version (a version counter emptied
// with the model starts again from 1), and ends a lost state; nothing
// else is delivered while the model is lost, nor commits of another
// model.
func (b *redisBackend) deliver(m feedMessage, fromFeed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ver, events := m.V, m.E
	if m.R {
		// Any version but the one delivered last is news: a node that had
		// not noticed the loss yet is behind the restore's version counter,
		// which started again from 1. Only our own restore, delivered at
		// commit and again by pub/sub, is skipped the second time.
		if b.lost.Load() != nil || (m.M != "" && m.M != b.knownModel()) || ver != b.last {
			b.adoptLocked(m.M)
			b.feed.publish(Event{Kind: KindReset, Version: ver})
			b.last, b.pend = ver, 0
		}
		return
	}
	if b.lost.Load() != nil || (m.M != "" && m.M != b.knownModel()) {
		return
	}
	switch {
	case ver <= b.last:
		return
	case ver == b.last+1:
		for i := range events {
			events[i].Version = ver
		}
		b.feed.publish(events...)
	case !fromFeed:
		return
	default:
		b.feed.publish(Event{Kind: KindReset, Version: ver})
	}
	b.last = ver
	b.pend = 0
}

// state reads the version and the model's identity at once.
func (b *redisBackend) state(ctx context.Context) (ver uint64, model *string, err error) {
	vals, err := b.client.MGet(ctx, redisPrefix+"version", redisPrefix+"model").Result()
	if err != nil {
		return 0, nil, wrapRedis(err)
	}
	if s, ok := vals[0].(string); ok {
		if ver, err = strconv.ParseUint(s, 10, 64); err != nil {
			return 0, nil, fmt.Errorf("version %q: %w", s, err)
		}
	}
	if s, ok := vals[1].(string); ok {
		model = &s
	}
	return ver, model, nil
}

// followsLocked checks the model's identity for resync and poll: false when
// the model is lost (then nothing is delivered). A node whose lost model is
// back (restored while its pub/sub message went missing) recovers with a
// reset. b.mu must be held.
func (b *redisBackend) followsLocked(gen uint64, ver uint64, model *string) bool {
	if model != nil && *model == b.knownModel() {
		if b.lost.Load() != nil {
			b.adoptLocked("")
			b.feed.publish(Event{Kind: KindReset, Version: ver})
			b.last, b.pend = ver, 0
			return false
		}
		return true
	}
	_ = b.checkModel(gen, model)
	return false
}

// resync compares the stored version with the last delivered one and
// resets consumers when they differ: called after a (re)subscription,
// when messages may have been lost.
func (b *redisBackend) resync(ctx context.Context) {
	gen := b.gen.Load()
	v, model, err := b.state(ctx)
	if err != nil {
		if ctx.Err() == nil {
			b.feedError(feedResync, err)
		}
		return
	}
	if model == nil {
		b.tombstone(ctx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.followsLocked(gen, v, model) {
		return
	}
	if v != b.last {
		b.feed.publish(Event{Kind: KindReset, Version: v})
		b.last = v
	}
	b.pend = 0
}

// poll catches messages lost without a reconnect: a version ahead of the
// delivered one on two polls in a row means its message is not coming.
// It also finds a model lost while the node was idle.
func (b *redisBackend) poll(ctx context.Context) {
	gen := b.gen.Load()
	v, model, err := b.state(ctx)
	if err != nil {
		return
	}
	if model == nil {
		b.tombstone(ctx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.followsLocked(gen, v, model) {
		return
	}
	switch {
	case v < b.last:
		// The version went backwards: the model was replaced (a restore
		// whose message we missed). Start again from it.
		b.feed.publish(Event{Kind: KindReset, Version: v})
		b.last = v
		b.pend = 0
	case v == b.last:
		b.pend = 0
	case b.pend != 0 && b.last < b.pend:
		b.feed.publish(Event{Kind: KindReset, Version: v})
		b.last = v
		b.pend = 0
	default:
		b.pend = v
	}
}

// feedMessage is one pub/sub message: a commit's version and events,
// the identity of the model it was made on, and whether it is a restore.
type feedMessage struct {
	V uint64  `json:"v"`
	E []Event `json:"e"`
	M string  `json:"m,omitempty"`
	R bool    `json:"r,omitempty"`
}

func (b *redisBackend) listen(ctx context.Context, ps *redis.PubSub) {
	defer close(b.done)
	defer ps.Close()
	backoff := 50 * time.Millisecond
	lastPoll := time.Now()
	for {
		msg, err := ps.ReceiveTimeout(ctx, pollInterval)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: check the connection and the version.
				_ = ps.Ping(ctx)
				b.poll(ctx)
				lastPoll = time.Now()
				continue
			}
			// go-redis reconnects on the next receive; the resubscription
			// arrives as a *redis.Subscription and triggers resync.
			b.feedError(feedReceive, err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, pollInterval)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				b.resync(ctx)
			}
		case *redis.Message:
			var fm feedMessage
			if err := json.Unmarshal([]byte(m.Payload), &fm); err != nil || fm.V == 0 {
				b.feedError(feedBadMessage, cmp.Or(err, errNoVersion), "bytes", len(m.Payload))
				continue
			}
			b.deliver(fm, true)
		}
		// A busy channel never times out: poll on the clock as well, so a
		// lost model is found whatever the traffic.
		if time.Since(lastPoll) >= pollInterval {
			b.poll(ctx)
			lastPoll = time.Now()
		}
	}
}

// Reasons of warden_store_feed_errors_total (docs/metrics.md): what the
// change feed could not do. The feed recovers from each on its own.
const (
	// feedReceive: receiving from the subscription failed (Redis went
	// away); go-redis reconnects and resubscribes, then resync catches up.
	feedReceive = "receive"
	// feedBadMessage: a message on the events channel is not a commit (not
	// warden's JSON, or no version); it is dropped, and the polls find the
	// version it may have carried.
	feedBadMessage = "bad_message"
	// feedResync: the version could not be read after a (re)subscription;
	// the polls compare it instead.
	feedResync = "resync"
)

// feedErrorMessages are the log messages of the reasons.
var feedErrorMessages = map[string]string{
	feedReceive:    "redis change feed: receiving failed; reconnecting, then catching up",
	feedBadMessage: "redis change feed: dropped a message that is not a warden commit; the next polls catch up",
	feedResync:     "redis change feed: could not read the version after subscribing; the next polls catch up",
}

// errNoVersion: a feed message that decodes but carries no version.
var errNoVersion = errors.New("no version")

// newFeedErrors makes the counter of warden_store_feed_errors_total, with
// every reason's series at 0, so a rate over it starts at once.
func newFeedErrors() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_store_feed_errors_total",
		Help: "Problems of the Redis change feed, by reason (receive, bad_message, resync); the feed recovers from each by itself.",
	}, []string{"reason"})
	for reason := range feedErrorMessages {
		c.WithLabelValues(reason)
	}
	return c
}

// feedError counts a problem of the change feed and logs it at WARN, one
// line per reason every redisLogEvery at most (Redis down fails every
// receive), the next line saying how many were held back. attrs never
// hold a message's content, only its size.
func (b *redisBackend) feedError(reason string, err error, attrs ...any) {
	b.feedErrors.WithLabelValues(reason).Inc()
	suppressed, ok := b.feedLog.allow(reason)
	if !ok {
		return
	}
	attrs = append(attrs, "store", "redis", "reason", reason, "err", err)
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	b.log.Warn(feedErrorMessages[reason], attrs...)
}

// collectors are the metrics of the Redis store itself, which Instrument
// registers.
func (b *redisBackend) collectors() []prometheus.Collector {
	return []prometheus.Collector{b.feedErrors}
}

// ---- whole-model operations ----

var dumpScript = redis.NewScript(`
local p = ARGV[1]
local out = {redis.call('GET', p..'version') or '0', redis.call('GET', p..'model') or ''}
for _, b in ipairs(redis.call('SMEMBERS', p..'buckets')) do
  local all = redis.call('HGETALL', p..'b:'..b)
  if #all > 0 then
    table.insert(out, b)
    table.insert(out, all)
  end
end
return out
`)

func (b *redisBackend) dump(ctx context.Context) (map[string]map[string][]byte, uint64, error) {
	if err := b.check(ctx); err != nil {
		return nil, 0, err
	}
	gen := b.gen.Load()
	res, err := dumpScript.Run(ctx, b.client, []string{redisPrefix + "version"}, redisPrefix).Slice()
	if err != nil {
		return nil, 0, wrapRedis(err)
	}
	if len(res) < 2 || len(res)%2 != 0 {
		return nil, 0, fmt.Errorf("dump: unexpected reply of %d elements", len(res))
	}
	verStr, _ := res[0].(string)
	ver, err := strconv.ParseUint(verStr, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("dump: version %q: %w", verStr, err)
	}
	var model *string
	if m, _ := res[1].(string); m != "" {
		model = &m
	}
	if err := b.checkModel(gen, model); err != nil {
		return nil, 0, err
	}
	data := map[string]map[string][]byte{}
	for i := 2; i+1 < len(res); i += 2 {
		name, _ := res[i].(string)
		kv, _ := res[i+1].([]any)
		m := make(map[string][]byte, len(kv)/2)
		for j := 0; j+1 < len(kv); j += 2 {
			k, _ := kv[j].(string)
			v, _ := kv[j+1].(string)
			m[k] = []byte(v)
		}
		data[name] = m
	}
	return data, ver, nil
}

// loadScript replaces every bucket at once. Revisions of old and new
// buckets are bumped so that any transaction that read them reruns.
// Settings the keep patterns select (ARGV[5..4+n]; a pattern ending in
// "/" is a prefix) are read before the wipe and written back after it,
// inside the same script, so no write can slip in between. The model
// keeps its identity; a lost one gets back the identity the running
// nodes recorded (so they recognise it), else a new one (ARGV[2]). It
// returns the version and the identity.
var loadScript = redis.NewScript(`
local p, sb, nkeep = ARGV[1], ARGV[3], tonumber(ARGV[4])
local m = redis.call('GET', p..'model') or redis.call('GET', p..'lost') or ARGV[2]
redis.call('SET', p..'model', m)
redis.call('DEL', p..'lost')
local kept = {}
if nkeep > 0 then
  local all = redis.call('HGETALL', p..'b:'..sb)
  for j = 1, #all, 2 do
    local k = all[j]
    for q = 5, 4 + nkeep do
      local pat = ARGV[q]
      local hit
      if string.sub(pat, -1) == '/' then hit = string.sub(k, 1, #pat) == pat else hit = k == pat end
      if hit then
        table.insert(kept, k); table.insert(kept, all[j+1])
        break
      end
    end
  end
end
for _, b in ipairs(redis.call('SMEMBERS', p..'buckets')) do
  redis.call('DEL', p..'b:'..b)
  redis.call('INCR', p..'r:'..b)
end
redis.call('DEL', p..'buckets')
local i = 5 + nkeep
while i <= #ARGV do
  local b, n = ARGV[i], tonumber(ARGV[i+1]); i = i + 2
  redis.call('SADD', p..'buckets', b)
  redis.call('INCR', p..'r:'..b)
  local chunk = {}
  for _ = 1, n do
    table.insert(chunk, ARGV[i]); table.insert(chunk, ARGV[i+1]); i = i + 2
    if #chunk >= 1000 then
      redis.call('HSET', p..'b:'..b, unpack(chunk)); chunk = {}
    end
  end
  if #chunk > 0 then redis.call('HSET', p..'b:'..b, unpack(chunk)) end
end
if #kept > 0 then
  redis.call('SADD', p..'buckets', sb)
  redis.call('INCR', p..'r:'..sb)
  redis.call('HSET', p..'b:'..sb, unpack(kept))
end
local ver = redis.call('INCR', p..'version')
redis.call('PUBLISH', p..'events', '{"v":'..ver..',"e":[{"kind":"reset"}],"m":"'..m..'","r":true}')
return {ver, m}
`)

// load is the one operation a lost model allows: a restore is how it is
// recovered.
func (b *redisBackend) load(ctx context.Context, data map[string]map[string][]byte, keep []string) error {
	if err := b.checkOpen(ctx); err != nil {
		return err
	}
	args := []any{redisPrefix, NewID(), bucketSettings, len(keep)}
	for _, k := range keep {
		args = append(args, k)
	}
	for name, kv := range data {
		if len(kv) == 0 {
			continue
		}
		args = append(args, name, len(kv))
		for k, v := range kv {
			args = append(args, k, string(v))
		}
	}
	res, err := loadScript.Run(ctx, b.client, []string{redisPrefix + "version"}, args...).Slice()
	if err != nil {
		return wrapRedis(err)
	}
	ver, _ := res[0].(int64)
	m, _ := res[1].(string)
	b.deliver(feedMessage{V: uint64(ver), E: []Event{{Kind: KindReset}}, M: m, R: true}, false)
	return nil
}

func (b *redisBackend) version(ctx context.Context) (uint64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	gen := b.gen.Load()
	v, model, err := b.state(ctx)
	if err != nil {
		return 0, err
	}
	if err := b.checkModel(gen, model); err != nil {
		return 0, err
	}
	return v, nil
}

// rawVersion reads the version without checking the model.
func (b *redisBackend) rawVersion(ctx context.Context) (uint64, error) {
	if err := b.checkOpen(ctx); err != nil {
		return 0, err
	}
	v, err := b.client.Get(ctx, redisPrefix+"version").Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, wrapRedis(err)
	}
	return v, nil
}

// ping reads the model's identity: an answer from Redis that no longer
// holds the model is no ready store.
func (b *redisBackend) ping(ctx context.Context) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	gen := b.gen.Load()
	m, err := modelOf(b.client.Get(ctx, redisPrefix+"model"))
	if err != nil {
		return err
	}
	if m == nil {
		b.tombstone(ctx)
	}
	return b.checkModel(gen, m)
}

func (b *redisBackend) close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.cancel()
	// Closing the subscription interrupts a receive blocked on the socket.
	_ = b.ps.Close()
	<-b.done
	return b.client.Close()
}

// wrapRedis marks failures to reach Redis as ErrUnavailable; errors Redis
// itself replied with (a script error, say) are passed on as they are.
func wrapRedis(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var re redis.Error
	if errors.As(err, &re) {
		return fmt.Errorf("redis: %w", err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
