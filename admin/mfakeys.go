package admin

import (
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/pquerna/otp"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// registerMFAKeys serves seed 002's MFA keys and trusted devices. They
// work on the same stored state as /api/mfa/* (mfa.go): a user is
// enrolled while it holds an active key, whichever API activated it.
func (s *Server) registerMFAKeys() {
	s.handle("POST /api/v1/user/mfa", self, s.mfaOn(s.createMFAKey))
	s.handle("PATCH /api/v1/user/mfa/{key_id}", self, s.mfaOn(s.activateMFAKey))
	s.handle("GET /api/v1/user/mfa/status", self, s.mfaKeyStatuses)
	s.handle("GET /api/v1/user/mfa/type", self, s.mfaKeyTypes)
	// {user_id} routes: the caller's own id, or "my", needs no permission;
	// another user's needs the http permission on the path (mfaOwner).
	s.handle("GET /api/v1/user/{user_id}/mfa", self, s.listMFAKeys)
	s.handle("DELETE /api/v1/user/my/mfa/{key_id}", self, s.mfaOn(s.deleteMFAKey))
	s.handle("DELETE /api/v1/user/{user_id}/mfa/{key_id}", self, s.mfaOn(s.deleteMFAKey))
	s.handle("GET /api/v1/user/{user_id}/mfa/trusted_device", self, s.listTrustedDevices)
	s.handle("DELETE /api/v1/user/{user_id}/mfa/trusted_device/{device_id}", self, s.deleteTrustedDevice)
}

// lookup is an entry of seed 002's lookup lists (statuses, types), and
// how a key shows its own.
type lookup struct {
	ID          int    `json:"id"`
	Description string `json:"description"`
}

// The lookup ids. Seed 002 fixes only "use 1 for ACTIVE"; pending is 0 so
// that the ids grow with the key's progress.
var (
	mfaStatusPending = lookup{ID: 0, Description: "activation pending"}
	mfaStatusActive  = lookup{ID: 1, Description: "active"}
	mfaTypeTOTP      = lookup{ID: 1, Description: "TOTP"}
)

// statusLookup is the lookup entry of a stored key status.
func statusLookup(status string) lookup {
	if status == store.MFAStatusActive {
		return mfaStatusActive
	}
	return mfaStatusPending
}

// errKeyCode answers a wrong or replayed activation code: 422, not
// /api/mfa/validate's 401, so that a v1 client cannot mistake a mistyped
// code for an expired auth_token and log in again.
var errKeyCode = errorf(http.StatusUnprocessableEntity, "invalid one-time code")

// mfaKeyView shows a key without its secret.
type mfaKeyView struct {
	ID             string     `json:"id"`
	Status         lookup     `json:"status"`
	Type           lookup     `json:"type"`
	CreationDate   time.Time  `json:"creation_date"`
	ActivationDate *time.Time `json:"activation_date"`
}

func viewMFAKey(k store.MFAKey) mfaKeyView {
	v := mfaKeyView{ID: k.ID, Status: statusLookup(k.Status), Type: mfaTypeTOTP, CreationDate: k.CreatedAt}
	if !k.ActivatedAt.IsZero() {
		at := k.ActivatedAt
		v.ActivationDate = &at
	}
	return v
}

// createdMFAKey is the answer of a new key: the only one that holds the
// secret (seed 002: "will be displayed only on creation").
type createdMFAKey struct {
	mfaKeyView
	SecretKey string `json:"secret_key"`
	OTPAuth   string `json:"otpauth"`
	QRCode    string `json:"qrCode"` // otpauth as a QR code (qrCode)
}

// lookupRef names a lookup entry in a request. The id is a float because
// seed 002's clients send numbers such as 1.0.
type lookupRef struct {
	ID *float64 `json:"id"`
}

func (l *lookupRef) is(want lookup) bool {
	return l != nil && l.ID != nil && *l.ID == float64(want.ID)
}

type createMFAKeyRequest struct {
	Type     *lookupRef `json:"type"`
	Password string     `json:"password"`
	// Code (a current TOTP code of an active key) or BackupCode: required
	// once the caller is enrolled.
	Code       string `json:"code"`
	BackupCode string `json:"backup_code"`
}

// createMFAKey adds a pending TOTP key for the caller. The password is
// checked like a login's (a wrong one counts towards the lockout), so a
// token alone cannot add a second factor. Once the caller is enrolled, a
// current code of its MFA (or a backup code) is needed too, checked and
// spent as POST /api/mfa/disable does (a wrong one counts towards the MFA
// lock): a stolen session, even with the password, cannot add a factor of
// its own. The code is spent in the same atomic update that adds the key.
func (s *Server) createMFAKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req createMFAKeyRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if !req.Type.is(mfaTypeTOTP) {
		return errorf(http.StatusBadRequest, "type.id is required and must be %d (%s)", mfaTypeTOTP.ID, mfaTypeTOTP.Description)
	}
	if req.Password == "" {
		return errorf(http.StatusBadRequest, "password is required")
	}
	code := credential.MFACode{OTP: req.Code, BackupCode: req.BackupCode}
	if mfaActive(c.user.MFA) && !code.Valid() {
		return errorf(http.StatusBadRequest, "you are enrolled in MFA: exactly one of code (a current code of an active key) and backup_code is required to add a key")
	}
	if _, err := s.checkPassword(r, c.user.Username, req.Password); err != nil {
		return err
	}
	key, uri, err := s.mfa.CreateKey(r.Context(), c.user, code)
	if errors.Is(err, credential.ErrMFAEnrolled) {
		return errorf(http.StatusConflict, "you enrolled in MFA meanwhile: adding a key now needs a current code; try again with one")
	}
	if err != nil {
		return s.auditMFA(r.Context(), err)
	}
	parsed, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return err
	}
	qr, err := qrCode(parsed)
	if err != nil {
		return err
	}
	s.log.Info("mfa key created", "user", c.user.Username, "key_id", key.ID)
	writeJSON(w, http.StatusCreated, createdMFAKey{mfaKeyView: viewMFAKey(key), SecretKey: parsed.Secret(), OTPAuth: uri, QRCode: qr})
	return nil
}

type activateMFAKeyRequest struct {
	Status *lookupRef `json:"status"`
	Code   string     `json:"code"`
}

// activateMFAKey confirms one of the caller's pending keys with a current
// code. The first active key enrols the user: the answer is then 200 with
// the backup codes, shown once, as /api/mfa/validate gives them; any
// later key answers 204, seed 002's empty body.
func (s *Server) activateMFAKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req activateMFAKeyRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if !req.Status.is(mfaStatusActive) {
		return errorf(http.StatusBadRequest, "status.id is required and must be %d (%s)", mfaStatusActive.ID, mfaStatusActive.Description)
	}
	if req.Code == "" {
		return errorf(http.StatusBadRequest, "code is required")
	}
	codes, err := s.mfa.ActivateKey(r.Context(), c.user, r.PathValue("key_id"), req.Code)
	if errors.Is(s.auditMFA(r.Context(), err), credential.ErrMFARefused) {
		return errKeyCode
	}
	if err != nil {
		return err
	}
	if codes == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, backupCodesResponse{BackupCodes: codes})
	return nil
}

func (s *Server) mfaKeyStatuses(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	writeJSON(w, http.StatusOK, []lookup{mfaStatusPending, mfaStatusActive})
	return nil
}

func (s *Server) mfaKeyTypes(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	writeJSON(w, http.StatusOK, []lookup{mfaTypeTOTP})
	return nil
}

// mfaOwner resolves the user of a route under /api/v1/user/{user_id}/mfa:
// "my" (or no {user_id}) and the caller's own id are the caller, which
// needs no permission; another user needs the caller's http permission
// on the path, checked before the user is looked up so that ids cannot be
// probed (403 either way), and must exist (404). Deleting another user's
// key takes the takeover rule too (deleteMFAKey).
func (s *Server) mfaOwner(r *http.Request, c *caller) (u store.User, own bool, err error) {
	id := r.PathValue("user_id")
	if id == "" || id == "my" || id == c.user.ID {
		return c.user, true, nil
	}
	if !c.allowed(r) {
		return store.User{}, false, errorf(http.StatusForbidden, "missing permission for %s %s", r.Method, r.URL.Path)
	}
	u, err = s.st.User(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, false, errorf(http.StatusNotFound, "user not found")
	}
	return u, false, err
}

// listMFAKeys lists a user's keys, never their secrets: the ids are what
// deleting a key takes.
func (s *Server) listMFAKeys(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, _, err := s.mfaOwner(r, c)
	if err != nil {
		return err
	}
	out := []mfaKeyView{}
	if u.MFA != nil {
		for _, k := range u.MFA.Keys {
			out = append(out, viewMFAKey(k))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteMFAKeyRequest is the optional body of a key deletion: the code
// that deleting one's own last active key takes.
type deleteMFAKeyRequest struct {
	Code       string `json:"code"`
	BackupCode string `json:"backup_code"`
}

// deleteMFAKey deletes a key. A user deletes its own last active key only
// with a current code or a backup code in the body (seed 002's DELETE has
// none, so it is optional), checked, spent and counted as POST
// /api/mfa/disable does: without one that would switch MFA off with a
// token alone (409). Another user's key needs no code (a lost phone), but
// removing it resets that user's second factor, so the caller must be
// allowed to change how that user logs in: hold everything it holds, as
// PUT /api/users/{id} {"disableMfa": true} requires (checkTakeover).
func (s *Server) deleteMFAKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, own, err := s.mfaOwner(r, c)
	if err != nil {
		return err
	}
	if !own {
		if err := s.checkTakeoverOf(r.Context(), c, u); err != nil {
			return err
		}
	}
	var req deleteMFAKeyRequest
	if err := decodeOptional(w, r, &req); err != nil {
		return err
	}
	id := r.PathValue("key_id")
	var withCode bool
	if own {
		withCode, err = s.mfa.DeleteOwnKey(r.Context(), u, id, credential.MFACode{OTP: req.Code, BackupCode: req.BackupCode})
	} else {
		err = s.mfa.DeleteKey(r.Context(), u, id)
	}
	if errors.Is(err, credential.ErrMFACodeChoice) {
		return errorf(http.StatusBadRequest, "send one of code and backup_code, not both")
	}
	if err != nil {
		return s.auditMFA(r.Context(), err)
	}
	attrs := []any{"user", u.Username, "key_id", id, "by", c.user.Username}
	if withCode {
		attrs = append(attrs, "with_code", true)
	}
	s.log.Info("mfa key deleted", attrs...)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// trustedDeviceView lists a trusted device without its token.
type trustedDeviceView struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	CreationDate   time.Time `json:"creation_date"`
	ExpirationDate time.Time `json:"expiration_date"`
}

// listTrustedDevices lists a user's trusted devices that have not
// expired (an expired one skips nothing any more).
func (s *Server) listTrustedDevices(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, _, err := s.mfaOwner(r, c)
	if err != nil {
		return err
	}
	out := []trustedDeviceView{}
	for _, d := range s.mfa.TrustedDevices(u) {
		out = append(out, trustedDeviceView{ID: d.ID, Name: d.Name, CreationDate: d.CreatedAt, ExpirationDate: d.ExpiresAt})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteTrustedDevice forgets a trusted device: its token no longer skips
// the MFA step. Expired devices count as gone (404), as in the list.
func (s *Server) deleteTrustedDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, _, err := s.mfaOwner(r, c)
	if err != nil {
		return err
	}
	id := r.PathValue("device_id")
	if err := s.mfa.DeleteTrustedDevice(r.Context(), u, id); err != nil {
		return err
	}
	s.log.Info("mfa trusted device deleted", "user", u.Username, "device_id", id, "by", c.user.Username)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deviceName names a device trusted at the end of an MFA login: name as
// sent, checked, else the User-Agent, cleaned up rather than refused: the
// client chose the one, not the other.
func deviceName(r *http.Request, name string) (string, error) {
	if name == "" {
		return deviceNameOf(r.UserAgent()), nil
	}
	if len(name) > maxNameLen {
		return "", errorf(http.StatusBadRequest, "deviceName must be at most %d bytes", maxNameLen)
	}
	if err := validText("deviceName", name); err != nil {
		return "", err
	}
	return name, nil
}

// deviceNameOf makes a User-Agent fit for the device list: valid UTF-8,
// no control characters, at most maxNameLen bytes.
func deviceNameOf(ua string) string {
	name := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(ua, ""))
	name = strings.TrimSpace(name)
	if len(name) > maxNameLen {
		// A rune cut in two at the end is dropped.
		name = strings.ToValidUTF8(name[:maxNameLen], "")
	}
	return name
}

// deviceTrusted reports whether token is a device token of u that has not
// expired, so that its login may skip the MFA step.
func (s *Server) deviceTrusted(r *http.Request, u store.User, token string) bool {
	if token == "" || u.MFA == nil {
		return false
	}
	id, ok := s.mfa.TrustedDevice(u, token)
	if !ok {
		s.log.Info("http login device token not accepted", "user", u.Username, "remote", r.RemoteAddr)
		return false
	}
	s.log.Info("http login with trusted device", "user", u.Username, "remote", r.RemoteAddr, "device_id", id)
	return true
}
