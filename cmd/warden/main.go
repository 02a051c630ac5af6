package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/natscallout"
	"github.com/warden-mqtt/warden/store"
)

// Exit codes (also in usage()).
const (
	exitOK     = 0
	exitFail   = 1 // startup or shutdown failed
	exitConfig = 2 // invalid flags, environment or values
)

// storeFile is the embedded store's file name inside --data-dir.
const storeFile = "warden.db"

func main() {
	if code, done := helpOrVersion(os.Args[1:], os.Stdout, os.Stderr); done { // version.go
		os.Exit(code)
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" { // healthcheck.go
		os.Exit(healthcheck(os.Args[2:], os.Getenv, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so a second
	// Ctrl-C kills a shutdown that hangs.
	context.AfterFunc(ctx, stop)
	if len(os.Args) > 1 && isCommand(os.Args[1]) { // backup, restore, user add: commands.go
		code := runCommand(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program: it returns when ctx is done (a signal) or
// startup fails, with the process exit code. Everything it prints goes to
// stderr, so tests run it in-process or as a binary alike.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := loadConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) { // main answers these on stdout first
		fmt.Fprint(stderr, usage())
		return exitOK
	}
	if errors.Is(err, errVersion) {
		fmt.Fprintln(stderr, versionLine())
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "warden: invalid configuration:\n%s\nRun 'warden --help' for the flags.\n", indent(err.Error()))
		return exitConfig
	}

	level, _ := parseLevel(cfg.LogLevel) // validated by loadConfig
	// Both loggers redact packets, payloads and byte slices (serve.go).
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: redactPackets}))
	brokerLog := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: redactPackets}))
	// Bind every listener before anything is written: a port in use must
	// fail the first start before the admin and its one-time generated
	// password exist (listen.go). The servers close their sockets; this
	// closes those a failed start leaves.
	socks, err := bindSockets(cfg)
	if err != nil {
		log.Error("startup failed", "err", err)
		return exitFail
	}
	defer socks.close()
	if socks.pprof != nil {
		// Served from the start, so a slow startup can be profiled too;
		// closed on every return (pprof.go).
		defer startPprof(socks.pprof, log).Close()
	}
	auditLog, closeAudit, err := audit.Open(cfg.AuditLog, os.Stdout, stderr)
	if err != nil {
		log.Error("startup failed", "err", err)
		return exitFail
	}
	defer closeAudit()

	s, kind, err := openStore(ctx, cfg, log)
	if err != nil {
		log.Error("startup failed", "err", err)
		return exitFail
	}
	// Close the store on every path from here; on the clean path within
	// the shutdown timeout.
	closeStore := func() error { return closeWithin(s, cfg.ShutdownTimeout) }
	tel, s, err := startTelemetry(ctx, s, kind) // s: now measured (telemetry.go)
	if err != nil {
		log.Error("startup failed", "err", err)
		_ = closeStore()
		return exitFail
	}

	if err := bootstrap(ctx, s, cfg.AdminPassword, log); err != nil {
		log.Error("startup failed", "err", err)
		_ = closeStore()
		return exitFail
	}
	followAdminPassword(ctx, s, log) // ends the reminder at the admin's first login (adminhint.go)

	tokens, err := credential.NewTokens(ctx, s, tokenIssuer)
	if err != nil {
		log.Error("startup failed", "err", err)
		_ = closeStore()
		return exitFail
	}
	guard, err := newLoginGuard(ctx, cfg, s, log, tel.registry)
	if err != nil {
		log.Error("startup failed", "err", err)
		_ = closeStore()
		return exitFail
	}
	// The soft memory limit: an explicit GOMEMLIMIT, else 90% of the
	// cgroup's limit, checked against what the verifications hold
	// (memlimit.go).
	applyMemoryLimit(chooseMemoryLimit(getenv, osRoot()), guard.verifier.WorkingSet(), log)
	// Without a limit, the free heap of a burst goes back to the OS once
	// warden is quiet again, not minutes later (memreturn.go).
	if err := startHeapReturn(ctx, cfg.MemoryReturnInterval, log, tel.registry); err != nil {
		log.Error("startup failed", "err", err)
		_ = closeStore()
		return exitFail
	}
	reg, err := startRegistry(ctx, cfg, s, log, guard.verifier)
	if err != nil {
		log.Error("startup failed", "err", err)
		_ = closeStore()
		return exitFail
	}
	trust, err := startTrust(ctx, cfg, s, log)
	if err != nil {
		log.Error("startup failed", "err", err)
		_ = closeStore()
		return exitFail
	}
	b, callout, hook, err := startBroker(ctx, cfg, socks, s, tokens, reg, trust, log, brokerLog, auditLog, tel.hook, guard)
	if err != nil {
		log.Error("startup failed", "err", err)
		_ = closeStore()
		return exitFail
	}
	tel.serving(b)
	httpSrv, closeHooks, err := startHTTP(ctx, cfg, socks.http, s, tokens, reg, trust, hook, log, auditLog, tel, guard)
	if err != nil {
		log.Error("startup failed", "err", err)
		closeCallout(callout)
		_ = b.Close()
		_ = closeStore()
		return exitFail
	}
	attrs := []any{"store", kind}
	if kind == "bolt" {
		// Absolute, so an operator sees which ./data was meant.
		dir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			dir = cfg.DataDir
		}
		attrs = append(attrs, "data_dir", dir)
	} else {
		attrs = append(attrs, "redis", redactURL(cfg.RedisURL))
	}
	log.Info("warden ready", attrs...)

	<-ctx.Done()
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	// NATS decides without warden from here: stop answering before the
	// store closes (a request under way is answered first).
	closeCallout(callout)
	// The broker webhooks stop following the model (ctx, which they were
	// started with, is done already); calls under way are still answered.
	closeHooks()
	// Stop taking requests and let in-flight ones finish, tell MQTT
	// clients "server shutting down", then close the store (shutdown.go).
	return shutdown(cfg.ShutdownTimeout, httpSrv, b, s, log)
}

// closeCallout stops answering NATS auth callouts (callout may be nil).
func closeCallout(callout *natscallout.Service) {
	if callout != nil {
		_ = callout.Close()
	}
}

// openStore opens Redis when a URL is configured, else the bolt file in
// the data directory. kind names the store for the logs; log hears what
// the Redis store finds on its own (that Redis lost warden's data).
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (s store.Store, kind string, err error) {
	if cfg.RedisURL != "" {
		// go-redis's own lines (failed dials, reconnects) through log,
		// rate-limited; its logger is per process, set once here.
		store.SetRedisLogger(log, cfg.RedisURL)
		s, err = store.OpenRedisWith(ctx, cfg.RedisURL, store.RedisOptions{Logger: log})
		if err != nil {
			// go-redis errors name the address, never the password.
			return nil, "", fmt.Errorf("redis store at %s: %w", redactURL(cfg.RedisURL), err)
		}
		return s, "redis", nil
	}
	s, err = store.OpenBolt(filepath.Join(cfg.DataDir, storeFile))
	if err != nil {
		return nil, "", err
	}
	return s, "bolt", nil
}

// closeWithin closes s, giving up after d: a Redis store whose server
// vanished must not keep the process from exiting.
func closeWithin(s store.Store, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("close store: %w", err)
		}
		return nil
	case <-time.After(d):
		return fmt.Errorf("close store: still closing after %s (--shutdown-timeout)", d)
	}
}

// redactURL returns the URL with its password masked, for logs: the
// userinfo password and any query parameter that looks like one.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "pass") {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

// indent prefixes each line of a joined error with "  - ".
func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  - " + l
	}
	return strings.Join(lines, "\n")
}
