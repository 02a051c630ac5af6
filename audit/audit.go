package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Sink names accepted by Open besides a file path.
const (
	SinkStderr = "stderr"
	SinkStdout = "stdout"
	SinkOff    = "off"
)

// Event names, the value of the "event" key of every record.
const (
	EventChange      = "admin.change"
	EventAuthFailure = "auth.failure"
)

// Outcome is how an admin change ended.
type Outcome string

// Outcomes of a change, from the HTTP status (OutcomeOf).
const (
	// Success: the change was made (2xx, 3xx).
	Success Outcome = "success"
	// Denied: the caller lacked a permission, or its token was refused
	// (401, 403).
	Denied Outcome = "denied"
	// Failed: the request was invalid or the server could not make the
	// change (any other status).
	Failed Outcome = "failed"
)

// OutcomeOf classifies an HTTP status.
func OutcomeOf(status int) Outcome {
	switch {
	case status >= 200 && status < 400:
		return Success
	case status == 401 || status == 403:
		return Denied
	}
	return Failed
}

// Channels of an authentication failure.
const (
	// ChannelHTTPLogin: a username and password at POST /api/login and its
	// aliases.
	ChannelHTTPLogin = "http-login"
	// ChannelMFA: a TOTP or backup code, at the MFA login step or when an
	// MFA setting asks for one.
	ChannelMFA = "mfa"
	// ChannelHTTPToken: a bearer token the API refused (invalid, expired,
	// revoked, suspended user).
	ChannelHTTPToken = "http-token"
	// ChannelMQTT: a refused MQTT CONNECT.
	ChannelMQTT = "mqtt"
	// ChannelLDAP: a password the LDAP directory decided (or could not),
	// over MQTT (the record has a client ID) or HTTP; the reason begins
	// with "ldap: ".
	ChannelLDAP = "ldap"
)

// ChannelFor is channel, or ChannelLDAP when reason says the directory
// decided: one rule for every surface that checks directory passwords.
func ChannelFor(channel, reason string) string {
	if strings.HasPrefix(reason, "ldap: ") {
		return ChannelLDAP
	}
	return channel
}

// maxValueLen bounds every string a record carries: failure records quote
// what a client sent (a username), and a client must not be able to write
// megabytes into the audit trail. Targets may list a batch, so they get
// more room.
const (
	maxValueLen  = 256
	maxTargetLen = 4096
)

// Logger writes audit records. A nil *Logger is valid and writes nothing
// (the audit log is off), so callers need no checks.
type Logger struct {
	log *slog.Logger
}

// New returns a Logger that writes one JSON object per line to w. Each
// write is a single Write call (slog's JSON handler), so lines from
// concurrent records never interleave, and a file opened with O_APPEND
// may be shared with other processes.
func New(w io.Writer) *Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			// One time zone for every node's records: they are merged
			// and compared.
			if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
				return slog.Time(slog.TimeKey, a.Value.Time().UTC())
			}
			return a
		},
	})
	return &Logger{log: slog.New(h).With(slog.Bool("audit", true))}
}

// CheckSink reports whether sink is one Open accepts, without opening
// anything (for configuration checks).
func CheckSink(sink string) error {
	if strings.TrimSpace(sink) == "" {
		return errors.New(`empty: want "stderr", "stdout", "off" or a file path`)
	}
	return nil
}

// Open returns the Logger for a sink: "stderr" and "stdout" write to the
// given writers, "off" returns a nil Logger, anything else is a file path,
// created with mode 0600 if missing and appended to. close releases the
// file (a no-op for the other sinks) and must be called once no more
// records are written.
func Open(sink string, stdout, stderr io.Writer) (l *Logger, close func() error, err error) {
	noop := func() error { return nil }
	if err := CheckSink(sink); err != nil {
		return nil, noop, err
	}
	switch sink {
	case SinkOff:
		return nil, noop, nil
	case SinkStderr:
		return New(stderr), noop, nil
	case SinkStdout:
		return New(stdout), noop, nil
	}
	// 0600: the trail names users and addresses; it is the operator's.
	f, err := os.OpenFile(sink, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, noop, fmt.Errorf("audit log: %w", err)
	}
	return New(f), f.Close, nil
}

// Target names one thing a change acted on, e.g. {"id", "<user id>"}.
type Target struct {
	Key, Value string
}

// Change is one admin change, successful or not.
type Change struct {
	// User is the username of the authenticated caller: who.
	User string
	// Action is what was asked: the route, "METHOD /pattern" (e.g.
	// "DELETE /api/users/{id}"), never the raw path or query.
	Action string
	// Targets are the path values of the route and what the handler
	// noted (e.g. the username of a created user).
	Targets []Target
	// Remote is the client's address (ip:port): from where.
	Remote string
	// Status is the HTTP status answered; Outcome is derived from it.
	Status int
}

// AuthFailure is one refused authentication.
type AuthFailure struct {
	// Channel is where it happened: ChannelHTTPLogin, ChannelMFA,
	// ChannelHTTPToken, ChannelMQTT or ChannelLDAP.
	Channel string
	// User is the username given (as given: it may not exist), or the
	// certificate's common name; empty when none was.
	User string
	// ClientID is the MQTT client ID (MQTT only).
	ClientID string
	// Remote is the client's address (ip:port).
	Remote string
	// Reason says why, for the operator (the client got a generic
	// answer). It is one of a fixed set of phrases, never input.
	Reason string
}

// Change records an admin change.
func (l *Logger) Change(ctx context.Context, c Change) {
	if l == nil {
		return
	}
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs,
		slog.String("event", EventChange),
		slog.String("user", clean(c.User)),
		slog.String("action", clean(c.Action)),
	)
	if t := targets(c.Targets); len(t) > 0 {
		attrs = append(attrs, slog.Attr{Key: "target", Value: slog.GroupValue(t...)})
	}
	attrs = append(attrs,
		slog.String("remote", clean(c.Remote)),
		slog.String("outcome", string(OutcomeOf(c.Status))),
		slog.Int("status", c.Status),
	)
	l.log.LogAttrs(ctx, slog.LevelInfo, "admin change", attrs...)
}

// AuthFailure records a refused authentication.
func (l *Logger) AuthFailure(ctx context.Context, f AuthFailure) {
	if l == nil {
		return
	}
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs,
		slog.String("event", EventAuthFailure),
		slog.String("channel", f.Channel),
		slog.String("user", clean(f.User)),
	)
	if f.ClientID != "" {
		attrs = append(attrs, slog.String("client_id", clean(f.ClientID)))
	}
	attrs = append(attrs,
		slog.String("remote", clean(f.Remote)),
		slog.String("reason", clean(f.Reason)),
	)
	l.log.LogAttrs(ctx, slog.LevelInfo, "authentication failure", attrs...)
}

// targets keeps the targets that may be written: a key that names a
// secret (a token in DELETE /api/oauth2/{token}, say) is dropped with its
// value.
func targets(ts []Target) []slog.Attr {
	var out []slog.Attr
	for _, t := range ts {
		if t.Key == "" || secretKey(t.Key) {
			continue
		}
		out = append(out, slog.String(t.Key, cleanN(t.Value, maxTargetLen)))
	}
	return out
}

// secretKey: names that hold secrets in warden's routes and bodies. An
// MFA key's ID (key_id) is an identifier, not key material.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	if k == "key_id" {
		return false
	}
	for _, s := range []string{"token", "password", "secret", "otp", "code", "key", "csr", "cookie"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// Redacted replaces a value that looks like a secret.
const Redacted = "[redacted]"

// clean bounds a value's length and masks one that looks like a JWT:
// clients do send tokens in username fields, and a username is quoted in
// failure records.
func clean(s string) string { return cleanN(s, maxValueLen) }

func cleanN(s string, max int) string {
	if looksLikeJWT(s) {
		return Redacted
	}
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// looksLikeJWT: "eyJ" (base64url of `{"`) and three non-empty dot-separated
// base64url segments, the shape of every token warden issues. Kept here,
// not imported from credential, so this package depends on nothing.
func looksLikeJWT(s string) bool {
	if !strings.HasPrefix(s, "eyJ") {
		return false
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
