package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

// apiError is an error with the HTTP status and message a client sees.
type apiError struct {
	status int
	msg    string
	// retry, when set, is sent as Retry-After (429, 503).
	retry time.Duration
}

// retryLater is an apiError whose client should wait for d before trying
// again (sent as Retry-After, in whole seconds, at least 1).
func retryLater(status int, d time.Duration, msg string) error {
	return &apiError{status: status, msg: msg, retry: d}
}

func (e *apiError) Error() string { return e.msg }

// errorf builds an apiError.
func errorf(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON shape of every error (DESIGN.md).
type errorBody struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
}

// status maps an error to the status and message a client may see. It is
// the one place where domain errors become HTTP statuses; internal error
// text never reaches a client.
func status(err error) (int, string) {
	var ae *apiError
	var pe *credential.PolicyError
	var mbe *http.MaxBytesError
	var ce *pki.CertificateError
	var be *account.BatchError
	var acc *account.Error
	switch {
	case errors.As(err, &be):
		return batchStatus(be)
	case errors.As(err, &ae):
		return ae.status, ae.msg
	case errors.As(err, &acc):
		return accountStatus(acc), acc.Msg
	case errors.Is(err, credential.ErrBusy):
		return status(errPoolBusy)
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.As(err, &pe):
		return http.StatusUnprocessableEntity, pe.Error()
	case errors.Is(err, registry.ErrLocked):
		return http.StatusLocked, clientText(err, "locked")
	case errors.Is(err, registry.ErrInvalid):
		return http.StatusBadRequest, clientText(err, "invalid request")
	case errors.Is(err, registry.ErrPolicy):
		return http.StatusUnprocessableEntity, clientText(err, "policy violation")
	case errors.Is(err, registry.ErrConflict):
		return http.StatusConflict, clientText(err, "conflict")
	case errors.Is(err, registry.ErrFull):
		return http.StatusTooManyRequests, clientText(err, "too many requests")
	case errors.Is(err, registry.ErrBusy):
		return http.StatusServiceUnavailable, "busy; try again"
	case errors.As(err, &ce):
		return http.StatusBadRequest, ce.Error()
	case errors.Is(err, pki.ErrNotRemovable):
		return http.StatusConflict, pki.ErrNotRemovable.Error()
	case errors.Is(err, authhook.ErrNoSuchClient):
		return http.StatusNotFound, "no such connected client"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, clientText(err, "conflict")
	case errors.Is(err, store.ErrInvalid), errors.Is(err, acl.ErrInvalidPermission), errors.Is(err, acl.ErrInvalidFilter),
		errors.Is(err, acl.ErrInvalidTopic):
		return http.StatusBadRequest, clientText(err, "invalid request")
	case errors.Is(err, store.ErrModelLost):
		return http.StatusServiceUnavailable, "store unavailable: " + lostModelMessage
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable, "store unavailable; try again"
	case errors.Is(err, credential.ErrTokenExpired), errors.Is(err, credential.ErrTokenInvalid), errors.Is(err, credential.ErrTokenRevoked):
		return http.StatusUnauthorized, "invalid or expired token"
	}
	for _, e := range mfaErrors {
		if errors.Is(err, e.err) {
			return e.status, cmp.Or(e.msg, e.err.Error())
		}
	}
	return http.StatusInternalServerError, "internal error"
}

// mfaErrors are the MFA service's errors (credential.MFAService) with
// their status; msg, when set, is what the API says instead of the
// error's own text, naming its fields and routes.
var mfaErrors = []struct {
	err    error
	status int
	msg    string
}{
	{credential.ErrMFADisabled, http.StatusForbidden, ""},
	{credential.ErrMFARefused, http.StatusUnauthorized, ""},
	{credential.ErrMFALocked, http.StatusForbidden, ""}, // the seed's 403
	{credential.ErrMFAEnrolled, http.StatusConflict, ""},
	{credential.ErrMFANotEnrolled, http.StatusConflict, ""},
	{credential.ErrMFACodeChoice, http.StatusBadRequest, "exactly one of otp and backupCode is required"},
	{credential.ErrMFAKeyNotFound, http.StatusNotFound, ""},
	{credential.ErrMFAKeyActive, http.StatusConflict, ""},
	{credential.ErrMFAKeysFull, http.StatusConflict, ""},
	{credential.ErrMFALastKey, http.StatusConflict, "this is your last active MFA key: send a current code (code) or a backup code (backup_code) to delete it, or switch MFA off with POST /api/mfa/disable"},
	{credential.ErrMFADeviceNotFound, http.StatusNotFound, ""},
}

// accountStatus is the status of a refusal by account's rules.
func accountStatus(e *account.Error) int {
	switch e.Kind {
	case account.ErrInvalid:
		return http.StatusBadRequest
	case account.ErrForbidden:
		return http.StatusForbidden
	case account.ErrNotFound:
		return http.StatusNotFound
	case account.ErrConflict:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// batchStatus is the status of the refusal of one user of a batch; the
// message says which (5xx stay as they are: not the user's fault).
func batchStatus(be *account.BatchError) (int, string) {
	code, msg := status(be.Err)
	if code >= 500 {
		return code, msg
	}
	return code, fmt.Sprintf("user %d: %s", be.Index, msg)
}

// lostModelMessage tells a client what store.ErrModelLost means and who
// fixes it.
const lostModelMessage = "Redis lost warden's data (flushed, or restarted without persistence); an operator must restore a backup with warden restore"

// clientText returns err's text for errors whose text is written for
// clients (validation and conflicts name the field, never a secret).
func clientText(err error, fallback string) string {
	if err == nil {
		return fallback
	}
	return err.Error()
}

// writeError renders err; 5xx are logged with their cause.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code, msg := status(err)
	if retry := retryAfter(err); retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (retry+time.Second-1)/time.Second))))
	}
	if code >= 500 {
		log.Error("http request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	writeJSON(w, code, errorBody{Error: msg, Code: code})
}

// retryAfter is how long the client told err should wait (0: no
// Retry-After): a busy verification pool, wherever the error came from,
// answers as errPoolBusy does.
func retryAfter(err error) time.Duration {
	if errors.Is(err, credential.ErrBusy) {
		err = errPoolBusy
	}
	if ae := (*apiError)(nil); errors.As(err, &ae) {
		return ae.retry
	}
	return 0
}

// writeJSON renders v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if v != nil {
		_ = encodeJSON(w, v)
	}
}

// encodeJSON writes v as JSON without HTML escaping, so that an otpauth
// URI keeps its literal "&" instead of "\u0026" (curl and jq users read
// these answers). The escaping guards JSON embedded in HTML; every answer
// here is application/json with nosniff and a CSP that lets nothing run
// (apiHeaders), so it guards nothing.
func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
