package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"net/http"
	"time"

	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp"

	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// MFAChallengeTTL is how long the secret of a login's first step may be
// used for its second step (POST /api/mfa/login).
const MFAChallengeTTL = credential.MFAChallengeTTL

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

// The rules (enrollment, codes and their lock, the two-step login,
// keys, trusted devices) are credential.MFAService's (s.mfa); the
// handlers here and in mfakeys.go decode, authorize, call and render.
func (s *Server) registerMFA() {
	s.handle("POST /api/mfa/enable", self, s.mfaOn(s.mfaEnable))
	s.handle("POST /api/mfa/validate", self, s.mfaOn(s.mfaValidate))
	s.handle("GET /api/mfa/isenrolled", self, s.mfaIsEnrolled)
	s.handle("POST /api/mfa/disable", self, s.mfaOn(s.mfaDisable))
	s.handle("POST /api/mfa/regenerate/backupcodes", self, s.mfaOn(s.mfaRegenerateBackupCodes))
	s.handle("POST /api/mfa/login", public, s.mfaOn(s.mfaLogin))
}

// mfaOn answers 403 (credential.ErrMFADisabled) when MFA is switched off
// (Options.MFAEnabled false), before h reads the request.
func (s *Server) mfaOn(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		if !s.mfa.Enabled() {
			return credential.ErrMFADisabled
		}
		return h(w, r, c)
	}
}

// mfaActive: the state holds an active key, so logins need a second factor.
func mfaActive(m *store.MFAState) bool { return credential.MFAActive(m) }

// mfaRequired: a login of u needs its second step.
func (s *Server) mfaRequired(u store.User) bool { return s.mfa.Required(u) }

// mfaEnrollmentDue: u must enroll before using anything but the
// enrollment routes.
func (s *Server) mfaEnrollmentDue(u store.User) bool { return s.mfa.EnrollmentDue(u) }

// mfaLocked: too many wrong codes lock u on every node (the lock is stored).
func (s *Server) mfaLocked(u store.User) bool { return s.mfa.Locked(u) }

// auditMFA records a refusal of the MFA service (a code, or a login's
// second step) in the audit trail, and returns err. The service has
// logged it.
func (s *Server) auditMFA(ctx context.Context, err error) error {
	var rf *credential.MFARefusal
	if errors.As(err, &rf) {
		s.auditAuth(ctx, audit.ChannelMFA, rf.User, rf.Reason)
	}
	return err
}

type mfaURIResponse struct {
	URI string `json:"uri"`
	// QRCode is URI as a QR code (qrCode).
	QRCode string `json:"qrCode"`
}

// qrSize is the width and height of an enrollment QR code in pixels:
// enough for an authenticator app to read it off a screen.
const qrSize = 200

// qrCode renders key's otpauth URI as a PNG QR code in a data: URL, made
// here so that a page shows it without asking any QR service (factory
// networks have no internet). It holds the secret, as the URI does.
func qrCode(key *otp.Key) (string, error) {
	img, err := qrImage(key.String(), qrSize)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// qrQuietZone is the white border a QR code needs around it, in modules
// (ISO/IEC 18004: 4). otp.Key.Image scales the code to fill the image,
// leaving only what rounding leaves: for some URI lengths 2 pixels, and
// scanners then fail to find the code's corners.
const qrQuietZone = 4

// qrImage draws text as a QR code (error correction M, as otp.Key.Image)
// on a white size×size square: whole pixels per module, with at least
// qrQuietZone modules of white around it.
func qrImage(text string, size int) (image.Image, error) {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return nil, err
	}
	n := code.Bounds().Dx()
	scale := size / (n + 2*qrQuietZone)
	if scale < 1 {
		return nil, fmt.Errorf("admin: a QR code of %d modules does not fit %d pixels", n, size)
	}
	img := image.NewGray(image.Rect(0, 0, size, size))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	off := (size - n*scale) / 2
	for y := range n {
		for x := range n {
			if code.At(x, y) == color.Black {
				draw.Draw(img, image.Rect(off+x*scale, off+y*scale, off+(x+1)*scale, off+(y+1)*scale), image.Black, image.Point{}, draw.Src)
			}
		}
	}
	return img, nil
}

// enrollmentQR is qrCode of an otpauth URI.
func enrollmentQR(uri string) (string, error) {
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return "", err
	}
	return qrCode(key)
}

// mfaEnable starts an enrollment: a new pending key replaces any pending
// one, and its otpauth URI (with the secret) is shown this once.
func (s *Server) mfaEnable(w http.ResponseWriter, r *http.Request, c *caller) error {
	uri, err := s.mfa.Enable(r.Context(), c.user)
	if err != nil {
		return err
	}
	qr, err := enrollmentQR(uri)
	if err != nil {
		return err
	}
	s.log.Info("mfa enrollment started", "user", c.user.Username)
	writeJSON(w, http.StatusOK, mfaURIResponse{URI: uri, QRCode: qr})
	return nil
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
	var req mfaValidateRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.OTP == "" {
		return errorf(http.StatusBadRequest, "otp is required")
	}
	codes, err := s.mfa.Validate(r.Context(), c.user, req.OTP)
	if errors.Is(err, credential.ErrMFAKeyNotFound) {
		return errorf(http.StatusBadRequest, "no enrollment in progress: call POST /api/mfa/enable first")
	}
	if err != nil {
		return s.auditMFA(r.Context(), err)
	}
	writeJSON(w, http.StatusOK, backupCodesResponse{BackupCodes: codes})
	return nil
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

// mfaDisable removes the caller's MFA (keys, backup codes, trusted
// devices) after a valid code.
func (s *Server) mfaDisable(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req codeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := s.mfa.Disable(r.Context(), c.user, credential.MFACode(req)); err != nil {
		return s.auditMFA(r.Context(), err)
	}
	s.log.Info("mfa disabled", "user", c.user.Username, "by", c.user.Username)
	w.WriteHeader(http.StatusOK)
	return nil
}

// mfaRegenerateBackupCodes replaces the caller's backup codes after a
// valid code (a backup code used for it is spent like any other).
func (s *Server) mfaRegenerateBackupCodes(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req codeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	codes, err := s.mfa.RegenerateBackupCodes(r.Context(), c.user, credential.MFACode(req))
	if err != nil {
		return s.auditMFA(r.Context(), err)
	}
	s.log.Info("mfa backup codes regenerated", "user", c.user.Username)
	writeJSON(w, http.StatusOK, backupCodesResponse{BackupCodes: codes})
	return nil
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
	secret, err := s.mfa.Challenge(r.Context(), u, label, ttl)
	if errors.Is(err, credential.ErrMFANotEnrolled) {
		return errorf(http.StatusConflict, "MFA state changed during login; log in again")
	}
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
	var req mfaLoginRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	code := credential.MFACode{OTP: req.OTP, BackupCode: req.BackupCode}
	if req.Username == "" || req.Secret == "" {
		return errorf(http.StatusBadRequest, "username and secret are required")
	}
	if !code.Valid() {
		return credential.ErrMFACodeChoice
	}
	if len(req.Username) > maxLoginUsernameLen {
		// As checkPassword: nobody's, refused before any work.
		s.log.Info("mfa login refused", "user", clipUsername(req.Username), "remote", r.RemoteAddr, "reason", "username too long")
		s.auditAuth(r.Context(), audit.ChannelMFA, clipUsername(req.Username), "username too long")
		return credential.ErrMFARefused
	}
	in := credential.MFALogin{Username: req.Username, Secret: req.Secret, Code: code, Remote: r.RemoteAddr, TrustDevice: req.TrustDevice}
	if req.TrustDevice {
		// Checked before any code, so a bad device name spends none.
		var err error
		if in.DeviceName, err = deviceName(r, req.DeviceName); err != nil {
			return err
		}
	}
	res, err := s.mfa.Login(r.Context(), in)
	if err != nil {
		return s.auditMFA(r.Context(), err)
	}
	u := res.User
	tok, rec, err := s.tokens.Issue(r.Context(), u, credential.KindLogin, res.Label, res.TokenTTL)
	if err != nil {
		return err
	}
	perms, err := s.effectivePermissions(r.Context(), u)
	if err != nil {
		return err
	}
	if d := res.Device; d != nil {
		s.log.Info("mfa device trusted", "user", u.Username, "device_id", d.ID, "expires_at", d.ExpiresAt)
	}
	s.log.Info("http login with mfa", "user", u.Username, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, loginResponse{Token: tok, ExpiresAt: rec.ExpiresAt, Permissions: perms, EnforceMFAEnrollment: u.EnforceMFAEnrollment, DeviceToken: res.DeviceToken})
	return nil
}
