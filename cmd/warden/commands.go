package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// commandsUsage is the Commands part of `warden --help`.
const commandsUsage = `
Commands (backup, restore, user add and nats-config work on the store the
flags or variables select: --data-dir/WARDEN_DATA_DIR or
--redis-url/WARDEN_REDIS_URL; the embedded store is locked while warden
runs, so stop warden first; Redis may be shared with running nodes, which
follow the change at once. They exit 0 when done, 1 when they fail, 2 on
invalid usage):
  warden backup --out FILE [--include-keys]
        write a backup archive of the whole model to FILE ("-": stdout),
        mode 0600. Without --include-keys it holds no secret keys (internal
        CA, token signing keys, MFA encryption key, NATS callout issuer).
  warden restore FILE [--restore-max-size BYTES]
        replace the whole model with the archive in FILE ("-": stdin),
        atomically, after checking all of it. Keys the archive lacks keep
        their current values. An archive without an active user holding
        connectware-admin, or larger than --restore-max-size once
        decompressed, is refused.
  warden user add NAME --role ROLE [--role ROLE...] [--password-stdin] [--reset-mfa]
        recovery: create the user with the roles (ROLE "admin" means
        connectware-admin), or, if it exists, set its password, lift a
        suspension and grant the roles; --reset-mfa also removes its MFA
        keys, backup codes and trusted devices (a lost authenticator) and
        says how many keys it removed. The password is read from stdin
        with --password-stdin, else taken from WARDEN_ADMIN_PASSWORD, else
        generated and printed once on stdout.
` + natsConfigUsage // natsconfig.go

// commands maps the first argument to a subcommand; any other first
// argument starts the server (run).
var commands = map[string]func(ctx context.Context, args []string, env commandEnv) int{
	"backup":      backupCommand,
	"restore":     restoreCommand,
	"user":        userCommand,
	"nats-config": natsConfigCommand,
}

// isCommand reports whether warden was started as a subcommand.
func isCommand(arg string) bool { _, ok := commands[arg]; return ok }

// commandEnv is what a subcommand may touch of the process, so tests run
// them in-process as well.
type commandEnv struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// runCommand runs the subcommand named by args[0] and returns its exit
// code: 0 done, 1 failed, 2 invalid usage.
func runCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	return commands[args[0]](ctx, args[1:], commandEnv{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr})
}

// commandFlags is a flag set for a subcommand with the store options
// (--data-dir, --redis-url) of the server's table, environment included.
type commandFlags struct {
	*flag.FlagSet
	name string
	cfg  Config
	env  commandEnv
}

func newCommandFlags(name string, env commandEnv) *commandFlags {
	cf := &commandFlags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), name: name, env: env}
	cf.SetOutput(io.Discard)
	cf.Usage = func() {}
	for _, o := range options {
		if o.flag == "data-dir" || o.flag == "redis-url" || (name == "restore" && o.flag == "restore-max-size") {
			o.bind(cf.FlagSet, &cf.cfg, o)
		}
	}
	return cf
}

// parse parses flags and positional arguments in any order (flag stops at
// the first positional one) and applies the environment to store flags
// not given. When the command must not go on (help, bad usage: the
// problem is printed), exit is its exit code; else exit is -1.
func (cf *commandFlags) parse(args []string, positional int, synopsis string) (pos []string, exit int) {
	for {
		rest, err := parseArgs(cf.FlagSet, args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(cf.env.stdout, "Usage: %s\n%s", synopsis, commandsUsage)
			return nil, exitOK
		}
		if err != nil {
			return nil, cf.usageError(synopsis, "%v", err)
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != positional {
		return nil, cf.usageError(synopsis, "want %d argument(s), got %d", positional, len(pos))
	}
	given := map[string]bool{}
	cf.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, o := range options {
		if cf.Lookup(o.flag) == nil || given[o.flag] {
			continue
		}
		if v := cf.env.getenv(o.env); v != "" {
			if err := cf.Set(o.flag, v); err != nil {
				return nil, cf.usageError(synopsis, "%s: %s", o.env, valueProblem(o, v, err))
			}
		}
	}
	if cf.cfg.RedisURL != "" {
		if err := checkRedisURL(cf.cfg.RedisURL); err != nil {
			return nil, cf.usageError(synopsis, "--redis-url (WARDEN_REDIS_URL): %v", err)
		}
	} else if strings.TrimSpace(cf.cfg.DataDir) == "" {
		return nil, cf.usageError(synopsis, "--data-dir (WARDEN_DATA_DIR) is empty and --redis-url is not set: no store")
	}
	return pos, -1
}

// usageError prints a usage problem and returns exitConfig.
func (cf *commandFlags) usageError(synopsis, format string, args ...any) int {
	fmt.Fprintf(cf.env.stderr, "warden %s: %s\nUsage: %s\nRun 'warden --help' for every command and flag.\n", cf.name, fmt.Sprintf(format, args...), synopsis)
	return exitConfig
}

// open opens the configured store for a subcommand.
func (cf *commandFlags) open(ctx context.Context) (store.Store, string, bool) {
	// A command reports what goes wrong in its own words, on stderr.
	s, kind, err := openStore(ctx, cf.cfg, slog.New(slog.DiscardHandler))
	if errors.Is(err, store.ErrInUse) {
		fmt.Fprintf(cf.env.stderr, "warden %s: %v\nStop warden first: with the embedded store, warden %s works offline.\n", cf.name, err, cf.name)
		return nil, "", false
	}
	if err != nil {
		fmt.Fprintf(cf.env.stderr, "warden %s: %v\n", cf.name, err)
		return nil, "", false
	}
	return s, kind, true
}

// where names the store for messages.
func (cf *commandFlags) where(kind string) string {
	if kind == "redis" {
		return "the Redis store at " + redactURL(cf.cfg.RedisURL)
	}
	return "the embedded store in " + cf.cfg.DataDir
}

// failed prints err for the command and returns exitFail.
func (cf *commandFlags) failed(format string, args ...any) int {
	fmt.Fprintf(cf.env.stderr, "warden %s: %s\n", cf.name, fmt.Sprintf(format, args...))
	return exitFail
}

// backupCommand is `warden backup --out FILE [--include-keys]`.
func backupCommand(ctx context.Context, args []string, env commandEnv) int {
	const synopsis = "warden backup --out FILE [--include-keys] [--data-dir DIR | --redis-url URL]"
	cf := newCommandFlags("backup", env)
	out := cf.String("out", "", `archive file to write ("-": stdout)`)
	var keys bool
	boolVar(cf.FlagSet, &keys, "include-keys", false, "also archive the internal CA, token signing keys, MFA encryption key and NATS callout issuer")
	if _, exit := cf.parse(args, 0, synopsis); exit >= 0 {
		return exit
	}
	if *out == "" {
		return cf.usageError(synopsis, "--out is required")
	}
	s, kind, ok := cf.open(ctx)
	if !ok {
		return exitFail
	}
	defer s.Close()
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return cf.failed("%v", err)
	}
	opts := store.ArchiveOptions{IncludeKeys: keys}
	var h store.ArchiveHeader
	if *out == "-" {
		h, err = store.WriteArchive(env.stdout, snap, opts)
	} else {
		h, err = writeFileAtomically(*out, func(w io.Writer) (store.ArchiveHeader, error) { return store.WriteArchive(w, snap, opts) })
	}
	if err != nil {
		return cf.failed("%v", err)
	}
	dest := *out
	if dest == "-" {
		dest = "stdout"
	}
	with := "without keys"
	if keys {
		with = "WITH the secret keys: keep it as safe as the keys themselves"
	}
	fmt.Fprintf(env.stderr, "warden backup: backup %s of %s written to %s: %d users, %d roles, %d tokens, %d registry requests, %s\n",
		h.ID, cf.where(kind), dest, len(snap.Users), len(snap.Roles), len(snap.Tokens), len(snap.RegistryRequests), with)
	return exitOK
}

// writeFileAtomically writes path through a temporary file in the same
// directory, renamed into place only once complete and synced: a failed
// or interrupted backup never leaves a file that looks like an archive.
// The file is private (0600): an archive holds password hashes, and keys
// with --include-keys.
func writeFileAtomically(path string, write func(io.Writer) (store.ArchiveHeader, error)) (store.ArchiveHeader, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return store.ArchiveHeader{}, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	w := bufio.NewWriter(f)
	h, err := write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return store.ArchiveHeader{}, err
	}
	return h, nil
}

// restoreCommand is `warden restore FILE`.
func restoreCommand(ctx context.Context, args []string, env commandEnv) int {
	const synopsis = "warden restore FILE [--restore-max-size BYTES] [--data-dir DIR | --redis-url URL]"
	cf := newCommandFlags("restore", env)
	pos, exit := cf.parse(args, 1, synopsis)
	if exit >= 0 {
		return exit
	}
	in := env.stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return cf.failed("%v", err)
		}
		defer f.Close()
		in = f
	}
	// The whole archive is checked before the store is even opened, with
	// the API's limits and rule: a file is no more trusted than an upload.
	if cf.cfg.RestoreMaxSize < 1 || cf.cfg.RestoreMaxSize > store.MaxArchiveContentBytes {
		return cf.usageError(synopsis, "--restore-max-size (WARDEN_RESTORE_MAX_SIZE) must be from 1 to %d bytes", store.MaxArchiveContentBytes)
	}
	h, snap, err := store.ReadArchiveWith(in, store.ReadOptions{MaxContentBytes: int64(cf.cfg.RestoreMaxSize), Check: admin.CheckRestorable})
	switch {
	case errors.Is(err, store.ErrConflict):
		return cf.failed("%s: refused: %v", pos[0], err)
	case err != nil:
		return cf.failed("%s: %v; nothing was changed", pos[0], err)
	}
	s, kind, ok := cf.open(ctx)
	if !ok {
		return exitFail
	}
	defer s.Close()
	lost := errors.Is(s.Ping(ctx), store.ErrModelLost)
	if lost && !h.IncludesKeys {
		// The keys went with the data; the running nodes still hold them
		// in memory, but new nodes will create others.
		fmt.Fprintf(env.stderr, "warden restore: warning: %s lost its data, keys included, and this archive holds no keys: "+
			"new token signing keys, a new internal CA and a new MFA key will be created, so tokens, certificates the old CA issued "+
			"and MFA enrollments stop working; restore an archive made with --include-keys if you have one\n", cf.where(kind))
	}
	if err := store.RestoreBackup(ctx, s, snap); err != nil {
		return cf.failed("%v; nothing was changed", err)
	}
	keys := "the store's own keys were kept"
	if h.IncludesKeys {
		keys = "with the archive's keys"
	}
	if lost {
		keys += "; the nodes that kept serving during the loss follow the restored model now"
	}
	fmt.Fprintf(env.stderr, "warden restore: backup %s restored into %s: %d users, %d roles, %d tokens, %d registry requests; %s\n",
		h.ID, cf.where(kind), len(snap.Users), len(snap.Roles), len(snap.Tokens), len(snap.RegistryRequests), keys)
	return exitOK
}

// roleList is a repeatable --role flag.
type roleList []string

func (r *roleList) String() string     { return strings.Join(*r, ",") }
func (r *roleList) Set(v string) error { *r = append(*r, v); return nil }

// userCommand is `warden user add NAME --role ROLE ...`.
func userCommand(ctx context.Context, args []string, env commandEnv) int {
	const synopsis = "warden user add NAME --role ROLE [--role ROLE...] [--password-stdin] [--reset-mfa] [--data-dir DIR | --redis-url URL]"
	if len(args) > 0 && (isHelpArg(args[0]) || args[0] == "help") {
		fmt.Fprintf(env.stdout, "Usage: %s\n%s", synopsis, commandsUsage)
		return exitOK
	}
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprintf(env.stderr, "warden user: the only subcommand is add\nUsage: %s\n", synopsis)
		return exitConfig
	}
	cf := newCommandFlags("user add", env)
	var roles roleList
	cf.Var(&roles, "role", `role name to grant (repeatable; "admin" means connectware-admin)`)
	var stdinPW, resetMFA bool
	boolVar(cf.FlagSet, &stdinPW, "password-stdin", false, "read the password from the first line of stdin")
	boolVar(cf.FlagSet, &resetMFA, "reset-mfa", false, "remove the user's MFA enrollment (lost authenticator)")
	pos, exit := cf.parse(args[1:], 1, synopsis)
	if exit >= 0 {
		return exit
	}
	name := pos[0]
	if err := credential.ValidUsername(name); err != nil {
		return cf.usageError(synopsis, "%v", err)
	}
	if len(roles) == 0 {
		return cf.usageError(synopsis, "give at least one --role (e.g. --role admin)")
	}

	password, generated, err := commandPassword(env, stdinPW)
	if err != nil {
		return cf.usageError(synopsis, "%v", err)
	}
	hash, err := credential.Hash(password, credential.DefaultParams)
	if err != nil {
		return cf.failed("%v", err)
	}

	s, kind, ok := cf.open(ctx)
	if !ok {
		return exitFail
	}
	defer s.Close()
	roleIDs, roleNames, err := resolveRoles(ctx, s, roles)
	if err != nil {
		return cf.failed("%v", err)
	}

	u, err := s.UserByUsername(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		u, err = store.CreateUserWithRole(ctx, s, store.User{
			Username: name, PasswordHash: hash, IdentityProvider: "local",
			GrantTypes: []store.GrantType{{Method: store.GrantPassword}}, Roles: roleIDs,
		}, nil)
		if errors.Is(err, store.ErrConflict) {
			return cf.failed("cannot create user %q: the name is taken (every user gets a role of its own name, and a role %q may exist)", name, name)
		}
		if err != nil {
			return cf.failed("%v", err)
		}
		fmt.Fprintf(env.stderr, "warden user add: created user %s in %s with the roles %s\n", name, cf.where(kind), strings.Join(roleNames, ", "))
		if resetMFA {
			fmt.Fprintf(env.stderr, "warden user add: --reset-mfa: %s is new and has no MFA enrolled\n", name)
		}
	case err != nil:
		return cf.failed("%v", err)
	default:
		var removed *store.MFAState // what --reset-mfa removed
		u, err = s.UpdateUser(ctx, u.ID, func(u *store.User) error {
			u.PasswordHash = hash // the store bumps PasswordVersion: old sessions of it end
			u.Suspended = false
			if len(u.GrantTypes) > 0 && !slices.ContainsFunc(u.GrantTypes, func(g store.GrantType) bool { return g.Method == store.GrantPassword }) {
				u.GrantTypes = append(u.GrantTypes, store.GrantType{Method: store.GrantPassword})
			}
			for _, id := range roleIDs {
				if !slices.Contains(u.Roles, id) {
					u.Roles = append(u.Roles, id)
				}
			}
			if resetMFA {
				removed, u.MFA = u.MFA, nil
			}
			return nil
		})
		if err != nil {
			return cf.failed("%v", err)
		}
		fmt.Fprintf(env.stderr, "warden user add: user %s in %s exists: password reset, suspension lifted, roles %s granted\n", name, cf.where(kind), strings.Join(roleNames, ", "))
		if resetMFA {
			fmt.Fprintf(env.stderr, "warden user add: %s\n", mfaResetSummary(name, removed))
		}
	}
	if slices.ContainsFunc(u.GrantTypes, func(g store.GrantType) bool { return g.Method == store.GrantCertificate && g.IsRequired }) {
		fmt.Fprintf(env.stderr, "warden user add: note: %s must also present a client certificate (a required grant type)\n", name)
	}
	if u.MFA != nil && slices.ContainsFunc(u.MFA.Keys, func(k store.MFAKey) bool { return k.Status == store.MFAStatusActive }) {
		fmt.Fprintf(env.stderr, "warden user add: note: %s has MFA enrolled; logins will ask for a code (--reset-mfa removes it)\n", name)
	}
	if generated {
		// The one place the command prints a secret, on stdout alone, so
		// it can be captured without the messages around it.
		fmt.Fprintf(env.stderr, "warden user add: the generated password of %s follows on stdout; it is shown only this once\n", name)
		fmt.Fprintln(env.stdout, password)
	}
	return exitOK
}

// commandPassword returns the password to set: the first line of stdin
// with --password-stdin, else WARDEN_ADMIN_PASSWORD, else a generated one
// (generated is then true). A given password must satisfy the policy.
func commandPassword(env commandEnv, fromStdin bool) (password string, generated bool, err error) {
	switch {
	case fromStdin:
		line, err := bufio.NewReader(env.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", false, fmt.Errorf("--password-stdin: %v", err)
		}
		password = strings.TrimRight(line, "\r\n")
		if password == "" {
			return "", false, errors.New("--password-stdin: stdin holds no password")
		}
	case env.getenv("WARDEN_ADMIN_PASSWORD") != "":
		password = env.getenv("WARDEN_ADMIN_PASSWORD")
	default:
		pw, err := generatePassword()
		return pw, true, err
	}
	// The policy's error names the rule, never the password.
	if err := credential.DefaultPolicy().Check(password); err != nil {
		return "", false, fmt.Errorf("the password does not satisfy the password policy: %v", err)
	}
	return password, false, nil
}

// resolveRoles finds the roles by name. "admin" means connectware-admin
// unless a role is literally named so. A built-in role that was deleted
// (or never created, on a store warden never started on) is created
// again: recovery must not depend on it.
func resolveRoles(ctx context.Context, s store.Store, names []string) (ids, resolved []string, err error) {
	builtin := map[string]store.Role{}
	for _, r := range builtinRoles() {
		builtin[r.Name] = r
	}
	for _, name := range names {
		r, err := s.RoleByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) && name == "admin" {
			name = admin.RoleAdmin
			r, err = s.RoleByName(ctx, name)
		}
		if errors.Is(err, store.ErrNotFound) {
			b, ok := builtin[name]
			if !ok {
				return nil, nil, fmt.Errorf("no role named %q (built-in: %s, %s)", name, admin.RoleAdmin, admin.RoleMinimum)
			}
			r, err = s.CreateRole(ctx, b)
			if errors.Is(err, store.ErrConflict) {
				r, err = s.RoleByName(ctx, name)
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("role %q: %w", name, err)
		}
		if !slices.Contains(ids, r.ID) {
			ids, resolved = append(ids, r.ID), append(resolved, r.Name)
		}
	}
	return ids, resolved, nil
}

// mfaResetSummary says what --reset-mfa removed from user name: its MFA
// keys, by status, or that it had none.
func mfaResetSummary(name string, removed *store.MFAState) string {
	if removed == nil || len(removed.Keys) == 0 {
		return fmt.Sprintf("--reset-mfa: %s had no MFA key enrolled; nothing to remove", name)
	}
	active := 0
	for _, k := range removed.Keys {
		if k.Status == store.MFAStatusActive {
			active++
		}
	}
	keys := "1 MFA key"
	if n := len(removed.Keys); n != 1 {
		keys = fmt.Sprintf("%d MFA keys", n)
	}
	return fmt.Sprintf("MFA removed from %s: %s (%d active, %d pending activation), with its backup codes and trusted devices; "+
		"logins ask for no code until %s enrolls again", name, keys, active, len(removed.Keys)-active, name)
}
