package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// MFAChallengeTTL is how long the secret of a login's first step may be
// used for its second step (POST /api/mfa/login).
const MFAChallengeTTL = 5 * time.Minute

// mfaEnrollmentRoutes are the routes a user whose enrollment is enforced
// (enforceMFAEnrollment) may call while not enrolled: what it takes to
// enroll, and the session that says so. handle refuses every other route
// with 403 until the user is enrolled.
var mfaEnrollmentRoutes = map[string]bool{
	"POST /api/mfa/enable":    true,
	"POST /api/mfa/validate":  true,
	"GET /api/mfa/isenrolled": true,
	"GET /api/session":        true,
	"GET /api/auth/mfa":       true, // whether MFA is on, asked before enrolling
	// The same enrollment through seed 002's MFA keys (mfakeys.go).
	"POST /api/v1/user/mfa":           true,
	"PATCH /api/v1/user/mfa/{key_id}": true,
	"GET /api/v1/user/mfa/status":     true,
	"GET /api/v1/user/mfa/type":       true,
}

func (s *Server) registerMFA() {
	s.handle("POST /api/mfa/enable", self, s.mfaEnable)
	s.handle("POST /api/mfa/validate", self, s.mfaValidate)
	s.handle("GET /api/mfa/isenrolled", self, s.mfaIsEnrolled)
	s.handle("POST /api/mfa/disable", self, s.mfaDisable)
	s.handle("POST /api/mfa/regenerate/backupcodes", self, s.mfaRegenerateBackupCodes)
	s.handle("POST /api/mfa/login", public, s.mfaLogin)
}

var (
	// errMFAOff answers the MFA endpoints when MFA is switched off
	// (Options.MFAEnabled false).
	errMFAOff = errorf(http.StatusForbidden, "MFA is disabled")
	// errCode is the one answer to a wrong, replayed or used-up code and,
	// on /api/mfa/login, to an unknown user or a wrong or expired secret,
	// so that the second step tells nothing the first one did not.
	errCode = errorf(http.StatusUnauthorized, "invalid one-time code")
	// errMFALocked: too many wrong codes; the seed's 403.
	errMFALocked = errorf(http.StatusForbidden, "too many failed login attempts")
	// errUnchanged aborts an UpdateUser whose function decided to write
	// nothing.
	errUnchanged = errors.New("unchanged")
)

// mfaActive: the state holds an active key, so logins need a second factor.
func mfaActive(m *store.MFAState) bool { return credential.MFAActive(m) }

// mfaRequired: a login of u needs its second step.
func (s *Server) mfaRequired(u store.User) bool { return s.opts.MFAEnabled && mfaActive(u.MFA) }

// mfaEnrollmentDue: u must enroll before using anything but the
// enrollment routes.
func (s *Server) mfaEnrollmentDue(u store.User) bool {
	return s.opts.MFAEnabled && u.EnforceMFAEnrollment && !mfaActive(u.MFA)
}

// mfaLocked: too many wrong codes lock u on every node (the lock is stored).
func (s *Server) mfaLocked(u store.User) bool {
	return s.opts.MFAEnabled && credential.MFALocked(u.MFA, s.now())
}

// updateMFA is UpdateUser where fn may return errUnchanged to write
// nothing.
func (s *Server) updateMFA(ctx context.Context, id string, fn func(*store.User) error) (store.User, error) {
	u, err := s.st.UpdateUser(ctx, id, fn)
	if errors.Is(err, errUnchanged) {
		return u, nil
	}
	return u, err
}

type mfaURIResponse struct {
	URI string `json:"uri"`
}

// mfaEnable starts an enrollment: a new pending key replaces any pending
// one, and its otpauth URI (with the secret) is shown this once.
func (s *Server) mfaEnable(w http.ResponseWriter, r *http.Request, c *caller) error {
	if !s.opts.MFAEnabled {
		return errMFAOff
	}
	if mfaActive(c.user.MFA) {
		return errorf(http.StatusConflict, "user is already enrolled")
	}
	_, uri, err := s.addKey(r.Context(), c.user, func(m *store.MFAState) error {
		if mfaActive(m) {
			return errorf(http.StatusConflict, "user is already enrolled")
		}
		m.Keys = slices.DeleteFunc(m.Keys, func(k store.MFAKey) bool { return k.Status == store.MFAStatusPending })
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("mfa enrollment started", "user", c.user.Username)
	writeJSON(w, http.StatusOK, mfaURIResponse{URI: uri})
	return nil
}

// addKey creates a pending TOTP key for u and stores it. prepare runs
// first on the stored state (never nil), in the same atomic update: its
// error refuses, and it may make room. It returns the stored key and its
// otpauth URI, which holds the secret in the clear: show it once.
func (s *Server) addKey(ctx context.Context, u store.User, prepare func(*store.MFAState) error) (store.MFAKey, string, error) {
	key, uri, err := s.mfa.NewKey(u.ID, u.Username, s.now().UTC())
	if err != nil {
		return store.MFAKey{}, "", err
	}
	_, err = s.st.UpdateUser(ctx, u.ID, func(x *store.User) error {
		if x.MFA == nil {
			x.MFA = &store.MFAState{}
		}
		if err := prepare(x.MFA); err != nil {
			return err
		}
		x.MFA.Keys = append(x.MFA.Keys, key)
		return nil
	})
	if err != nil {
		return store.MFAKey{}, "", err
	}
	return key, uri, nil
}

type mfaValidateRequest struct {
	OTP string `json:"otp"`
}

type backupCodesResponse struct {
	BackupCodes []string `json:"backupCodes"`
}

// mfaValidate completes an enrollment: a current code of the pending key
// activates it, and fresh backup codes are shown this once.
func (s *Server) mfaValidate(w http.ResponseWriter, r *http.Request, c *caller) error {
	if !s.opts.MFAEnabled {
		return errMFAOff
	}
	var req mfaValidateRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.OTP == "" {
		return errorf(http.StatusBadRequest, "otp is required")
	}
	if mfaActive(c.user.MFA) {
		return errorf(http.StatusConflict, "user is already enrolled")
	}
	var key store.MFAKey
	if c.user.MFA != nil {
		for _, k := range c.user.MFA.Keys {
			if k.Status == store.MFAStatusPending {
				key = k
			}
		}
	}
	if key.ID == "" {
		return errorf(http.StatusBadRequest, "no enrollment in progress: call POST /api/mfa/enable first")
	}
	codes, err := s.activateKey(r.Context(), c.user, key, req.OTP, func(m *store.MFAState) error {
		if mfaActive(m) {
			return errorf(http.StatusConflict, "user is already enrolled")
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, backupCodesResponse{BackupCodes: codes})
	return nil
}

// activateKey confirms u's pending key with a current code of it and, in
// one atomic update, marks it active and consumes the code's step, so
// the code cannot log in afterwards. guard, when set, runs first on the
// stored state; its error refuses. The user's first active key enrols
// it: fresh backup codes replace any old ones and are returned, to show
// once; codes is nil when the user was enrolled already. Enrolling also
// drops the user's other pending keys: they were created without a code
// of an active key (there was none), and once enrolled a key is added
// only with one (createMFAKey). A wrong or replayed code, or a key
// deleted or replaced meanwhile, is errCode.
func (s *Server) activateKey(ctx context.Context, u store.User, key store.MFAKey, code string, guard func(*store.MFAState) error) (codes []string, err error) {
	now := s.now().UTC()
	step, err := s.mfa.Check(u.ID, key, code, now)
	if err != nil {
		why := s.logCodeRefused(u.Username, "enrollment", err)
		s.auditAuth(ctx, audit.ChannelMFA, u.Username, "enrollment: "+why)
		return nil, errCode
	}
	codes, hashes, err := credential.NewBackupCodes()
	if err != nil {
		return nil, err
	}
	var enrols bool
	_, err = s.st.UpdateUser(ctx, u.ID, func(x *store.User) error {
		if guard != nil {
			if err := guard(x.MFA); err != nil {
				return err
			}
		}
		i := -1
		if x.MFA != nil {
			i = slices.IndexFunc(x.MFA.Keys, func(k store.MFAKey) bool { return k.ID == key.ID && k.Status == store.MFAStatusPending })
		}
		if i < 0 || x.MFA.Keys[i].LastStep >= step {
			return errCode // replaced or deleted, or the code was just used
		}
		enrols = !mfaActive(x.MFA)
		k := &x.MFA.Keys[i]
		k.Status, k.ActivatedAt, k.LastStep = store.MFAStatusActive, now, step
		if enrols {
			x.MFA.BackupCodes = hashes
			x.MFA.FailedCodes, x.MFA.FailedSince = 0, time.Time{}
			x.MFA.Keys = slices.DeleteFunc(x.MFA.Keys, func(k store.MFAKey) bool { return k.Status == store.MFAStatusPending })
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !enrols {
		s.log.Info("mfa key activated", "user", u.Username, "key_id", key.ID)
		return nil, nil
	}
	s.log.Info("mfa enrolled", "user", u.Username, "key_id", key.ID)
	return codes, nil
}

func (s *Server) mfaIsEnrolled(w http.ResponseWriter, _ *http.Request, c *caller) error {
	writeJSON(w, http.StatusOK, map[string]bool{"isEnrolled": mfaActive(c.user.MFA)})
	return nil
}

// codeRequest is a second factor: a TOTP code or a backup code.
type codeRequest struct {
	OTP        string `json:"otp"`
	BackupCode string `json:"backupCode"`
}

// enrolledCode reads the code of a request that needs MFA on and the
// caller enrolled (disable, regenerate).
func (s *Server) enrolledCode(w http.ResponseWriter, r *http.Request, c *caller) (codeRequest, error) {
	var req codeRequest
	if !s.opts.MFAEnabled {
		return req, errMFAOff
	}
	if err := decode(w, r, &req); err != nil {
		return req, err
	}
	if err := req.validate(); err != nil {
		return req, err
	}
	if !mfaActive(c.user.MFA) {
		return req, errorf(http.StatusConflict, "user is not enrolled")
	}
	return req, nil
}

func (c codeRequest) validate() error {
	if (c.OTP == "") == (c.BackupCode == "") {
		return errorf(http.StatusBadRequest, "exactly one of otp and backupCode is required")
	}
	return nil
}

// mfaDisable removes the caller's MFA (keys, backup codes, trusted
// devices) after a valid code.
func (s *Server) mfaDisable(w http.ResponseWriter, r *http.Request, c *caller) error {
	req, err := s.enrolledCode(w, r, c)
	if err != nil {
		return err
	}
	if err := s.useCode(r.Context(), c.user, req, nil, func(x *store.User) { x.MFA = nil }); err != nil {
		return err
	}
	s.log.Info("mfa disabled", "user", c.user.Username, "by", c.user.Username)
	w.WriteHeader(http.StatusOK)
	return nil
}

// mfaRegenerateBackupCodes replaces the caller's backup codes after a
// valid code (a backup code used for it is spent like any other).
func (s *Server) mfaRegenerateBackupCodes(w http.ResponseWriter, r *http.Request, c *caller) error {
	req, err := s.enrolledCode(w, r, c)
	if err != nil {
		return err
	}
	codes, hashes, err := credential.NewBackupCodes()
	if err != nil {
		return err
	}
	if err := s.useCode(r.Context(), c.user, req, nil, func(x *store.User) { x.MFA.BackupCodes = hashes }); err != nil {
		return err
	}
	s.log.Info("mfa backup codes regenerated", "user", c.user.Username)
	writeJSON(w, http.StatusOK, backupCodesResponse{BackupCodes: codes})
	return nil
}

// useCode checks a TOTP or backup code of u and, in the same atomic
// update, consumes it (the key's step, or the backup code) and applies
// then. guard, when set, runs first on the current state; its error
// refuses without counting a failure (a wrong login secret must not let
// anyone lock an account). A wrong code counts towards the lock: after
// LoginMaxFailures of them within LoginBackoff, the pending login is void
// and the account locked for LoginBackoff (errMFALocked).
func (s *Server) useCode(ctx context.Context, u store.User, req codeRequest, guard func(*store.MFAState) error, then func(*store.User)) error {
	now := s.now().UTC()
	// The expensive part (decrypting, HMACs) runs once, on the record as
	// read; the update then only re-checks that what matched is unused.
	var keyID, backupHash string
	var step uint64
	reason := "wrong code"
	if u.MFA != nil {
		switch {
		case req.OTP != "":
			for _, k := range u.MFA.Keys {
				if k.Status != store.MFAStatusActive {
					continue
				}
				st, err := s.mfa.Check(u.ID, k, req.OTP, now)
				if err == nil {
					keyID, step = k.ID, st
					break
				}
				if errors.Is(err, credential.ErrCodeReplayed) {
					reason = "replayed code"
				} else if errors.Is(err, credential.ErrSecretUnreadable) {
					s.log.Error("mfa key cannot be decrypted: was the store restored with another encryption key?", "user", u.Username, "key_id", k.ID)
				}
			}
		default:
			reason = "wrong backup code"
			if i := credential.MatchBackupCode(u.MFA.BackupCodes, req.BackupCode); i >= 0 {
				backupHash = u.MFA.BackupCodes[i]
			}
		}
	}
	var outcome error
	var why string
	_, err := s.updateMFA(ctx, u.ID, func(x *store.User) error {
		outcome, why = nil, ""
		m := x.MFA
		if !mfaActive(m) {
			outcome, why = errCode, "not enrolled"
			return errUnchanged
		}
		if now.Before(m.LockedUntil) {
			outcome, why = errMFALocked, "locked"
			return errUnchanged
		}
		if guard != nil {
			if outcome = guard(m); outcome != nil {
				// The login's guard answers errCode; others name their refusal.
				why = "no valid login challenge"
				if !errors.Is(outcome, errCode) {
					why = outcome.Error()
				}
				return errUnchanged
			}
		}
		ok := false
		if keyID != "" {
			if i := slices.IndexFunc(m.Keys, func(k store.MFAKey) bool { return k.ID == keyID && k.Status == store.MFAStatusActive }); i >= 0 && m.Keys[i].LastStep < step {
				m.Keys[i].LastStep = step
				ok = true
			}
		} else if backupHash != "" {
			if i := slices.Index(m.BackupCodes, backupHash); i >= 0 {
				m.BackupCodes = slices.Delete(m.BackupCodes, i, i+1)
				ok = true
			}
		}
		if !ok {
			why = reason
			if keyID != "" || backupHash != "" {
				why = "code used concurrently"
			}
			if outcome = s.countCodeFailure(m, now); outcome == errMFALocked {
				why += "; too many failures, locked"
			}
			return nil // the count is written
		}
		m.FailedCodes, m.FailedSince = 0, time.Time{}
		if then != nil {
			then(x)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if outcome != nil {
		if outcome == errMFALocked {
			// As too many wrong passwords would, from every address.
			s.lockout.Lock(u.Username)
		}
		s.log.Info("mfa code refused", "user", u.Username, "reason", why)
		s.auditAuth(ctx, audit.ChannelMFA, u.Username, why)
	}
	return outcome
}

// countCodeFailure records a wrong code on m and says how to answer it.
func (s *Server) countCodeFailure(m *store.MFAState, now time.Time) error {
	if m.FailedSince.IsZero() || now.Sub(m.FailedSince) > s.opts.LoginBackoff {
		m.FailedCodes, m.FailedSince = 0, now
	}
	m.FailedCodes++
	limit, lock := s.opts.LoginMaxFailures, true
	if limit < 0 { // lockout switched off: still void the challenge
		limit, lock = DefaultLoginMaxFailures, false
	}
	if m.FailedCodes < limit {
		return errCode
	}
	m.Challenge = nil
	m.FailedCodes, m.FailedSince = 0, time.Time{}
	if !lock {
		return errCode
	}
	m.LockedUntil = now.Add(s.opts.LoginBackoff)
	return errMFALocked
}

// logCodeRefused logs a refused code and returns why, for the audit trail.
func (s *Server) logCodeRefused(username, during string, err error) string {
	reason := "wrong code"
	switch {
	case errors.Is(err, credential.ErrCodeReplayed):
		reason = "replayed code"
	case errors.Is(err, credential.ErrSecretUnreadable):
		reason = "key cannot be decrypted"
	}
	s.log.Info("mfa code refused", "user", username, "during", during, "reason", reason)
	return reason
}

// mfaChallengeResponse is the answer of a right password of an enrolled
// user: no token yet, a secret for POST /api/mfa/login.
type mfaChallengeResponse struct {
	NeedsMFA             bool   `json:"needsMfa"`
	Secret               string `json:"secret"`
	EnforceMFAEnrollment bool   `json:"enforceMFAEnrollment"`
}

// mfaChallenge answers the first step of an enrolled user's login: the
// secret is stored hashed on the user, with what the login asked for its
// token, so the second step may reach any node.
func (s *Server) mfaChallenge(w http.ResponseWriter, r *http.Request, u store.User, label string, ttl time.Duration) error {
	secret, hash, err := credential.NewSecret()
	if err != nil {
		return err
	}
	ch := &store.MFAChallenge{SecretHash: hash, ExpiresAt: s.now().UTC().Add(MFAChallengeTTL), TokenTTL: ttl, Label: label}
	_, err = s.st.UpdateUser(r.Context(), u.ID, func(x *store.User) error {
		if !mfaActive(x.MFA) {
			return errorf(http.StatusConflict, "MFA state changed during login; log in again")
		}
		x.MFA.Challenge = ch
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("http login needs mfa", "user", u.Username, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, mfaChallengeResponse{NeedsMFA: true, Secret: secret, EnforceMFAEnrollment: u.EnforceMFAEnrollment})
	return nil
}

type mfaLoginRequest struct {
	Username   string `json:"username"`
	OTP        string `json:"otp"`
	BackupCode string `json:"backupCode"`
	Secret     string `json:"secret"`
	// TrustDevice asks for a device token that skips this step on later
	// logins (mfakeys.go); DeviceName names the device in the list, else
	// the User-Agent does.
	TrustDevice bool   `json:"trustDevice"`
	DeviceName  string `json:"deviceName"`
}

// mfaLogin is the second step of a login: the first step's secret and a
// code give the token the first step asked for.
func (s *Server) mfaLogin(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if !s.opts.MFAEnabled {
		return errMFAOff
	}
	var req mfaLoginRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	code := codeRequest{OTP: req.OTP, BackupCode: req.BackupCode}
	if req.Username == "" || req.Secret == "" {
		return errorf(http.StatusBadRequest, "username and secret are required")
	}
	if err := code.validate(); err != nil {
		return err
	}
	if len(req.Username) > maxLoginUsernameLen {
		// As checkPassword: nobody's, refused before any work.
		s.log.Info("mfa login refused", "user", clipUsername(req.Username), "remote", r.RemoteAddr, "reason", "username too long")
		s.auditAuth(r.Context(), audit.ChannelMFA, clipUsername(req.Username), "username too long")
		return errCode
	}
	req.Username = credential.NormalizeUsername(req.Username) // as checkPassword
	// Prepared before any check, so a bad device name spends no code.
	var device store.TrustedDevice
	var deviceToken string
	if req.TrustDevice {
		var err error
		if device, deviceToken, err = s.newTrustedDevice(r, req.DeviceName); err != nil {
			return err
		}
	}
	if b, _ := s.lockout.Check(req.Username, r.RemoteAddr); b != credential.NotBlocked {
		s.log.Info("mfa login refused", "user", req.Username, "remote", r.RemoteAddr, "reason", "locked")
		s.auditAuth(r.Context(), audit.ChannelMFA, req.Username, "locked")
		return errMFALocked
	}
	u, err := s.st.UserByUsername(r.Context(), req.Username)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Suspended) {
		s.log.Info("mfa login refused", "user", req.Username, "remote", r.RemoteAddr, "reason", "unknown or suspended user")
		s.auditAuth(r.Context(), audit.ChannelMFA, req.Username, "unknown or suspended user")
		return errCode
	}
	if err != nil {
		return err
	}
	now := s.now().UTC()
	guard := func(m *store.MFAState) error {
		c := m.Challenge
		if c == nil || !now.Before(c.ExpiresAt) || !credential.SecretMatches(c.SecretHash, req.Secret) {
			return errCode
		}
		return nil
	}
	// Checked on the record as read first, so a wrong secret costs what an
	// unknown user does (one read, no transaction); useCode checks again
	// atomically.
	if s.mfaLocked(u) {
		s.log.Info("mfa login refused", "user", req.Username, "remote", r.RemoteAddr, "reason", "mfa locked")
		s.auditAuth(r.Context(), audit.ChannelMFA, req.Username, "mfa locked")
		return errMFALocked
	}
	if !mfaActive(u.MFA) || guard(u.MFA) != nil {
		s.log.Info("mfa login refused", "user", req.Username, "remote", r.RemoteAddr, "reason", "no valid login challenge")
		s.auditAuth(r.Context(), audit.ChannelMFA, req.Username, "no valid login challenge")
		return errCode
	}
	var ch store.MFAChallenge
	err = s.useCode(r.Context(), u, code, guard, func(x *store.User) {
		ch = *x.MFA.Challenge
		x.MFA.Challenge = nil // one token per challenge
		if req.TrustDevice {
			s.trustDevice(x.MFA, device)
		}
	})
	if err != nil {
		return err
	}
	s.lockout.Succeed(u.Username, r.RemoteAddr)
	tok, rec, err := s.tokens.Issue(r.Context(), u, credential.KindLogin, ch.Label, ch.TokenTTL)
	if err != nil {
		return err
	}
	perms, err := s.effectivePermissions(r.Context(), u)
	if err != nil {
		return err
	}
	if req.TrustDevice {
		s.log.Info("mfa device trusted", "user", u.Username, "device_id", device.ID, "expires_at", device.ExpiresAt)
	}
	s.log.Info("http login with mfa", "user", u.Username, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, loginResponse{Token: tok, ExpiresAt: rec.ExpiresAt, Permissions: perms, EnforceMFAEnrollment: u.EnforceMFAEnrollment, DeviceToken: deviceToken})
	return nil
}
