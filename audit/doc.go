// Package audit owns warden's audit trail: one JSON line, through log/slog,
// per admin change (who, what, when, from where, with what outcome) and per
// authentication failure (HTTP login, MFA code, bearer token, MQTT
// CONNECT), written to the sink the operator chose (stderr, stdout, a file
// or nowhere).
//
// Records are built from typed fields only, never from free-form
// attributes, so a secret cannot ride along by accident; values that look
// like tokens are masked and path values named like secrets are dropped as
// a second line of defence. It must not be called on the MQTT hot path
// (ACL checks): only CONNECT refusals are audited there.
package audit
