package credential

import (
	"context"
	"errors"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// mfaEpoch is the fixed instant the TOTP tests run at: a step boundary
// (1767225600 = 58907520 × 30), so ±30 s are the neighbouring steps.
var mfaEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// runOathtool runs oathtool, the independent TOTP implementation the tests
// check ours against, and returns its trimmed output and exit error.
func runOathtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("oathtool"); err != nil {
		t.Fatal("oathtool not found: install it (apt-get install oathtool, or make deps); the TOTP tests check warden against it")
	}
	out, err := exec.Command("oathtool", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// oathCodeAt is oathtool's TOTP code for the base32 secret at the instant.
func oathCodeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	out, err := runOathtool(t, "--totp", "-b", "--now", at.UTC().Format("2006-01-02 15:04:05 UTC"), secret)
	if err != nil || !regexp.MustCompile(`^[0-9]{6}$`).MatchString(out) {
		t.Fatalf("oathtool: %v: %q", err, out)
	}
	return out
}

func newTestMFA(t *testing.T, s store.Store) *MFA {
	t.Helper()
	m, err := NewMFA(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newTestKey creates a key for alice and returns it with the base32 secret
// read back from its otpauth URI (as an authenticator app would).
func newTestKey(t *testing.T, m *MFA) (store.MFAKey, string, *url.URL) {
	t.Helper()
	k, uri, err := m.NewKey("user-1", "alice", mfaEpoch)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("otpauth URI %q: %v", uri, err)
	}
	return k, u.Query().Get("secret"), u
}

func TestMFANewKeyURIIsWhatAuthenticatorAppsExpect(t *testing.T) {
	t.Parallel()
	m := newTestMFA(t, storetest.OpenBolt(t))
	k, secret, u := newTestKey(t, m)
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/warden:alice" {
		t.Errorf("URI %s: want otpauth://totp/warden:alice", u)
	}
	for name, want := range map[string]string{"issuer": "warden", "algorithm": "SHA1", "digits": "6", "period": "30"} {
		if q.Get(name) != want {
			t.Errorf("URI parameter %s = %q, want %q", name, q.Get(name), want)
		}
	}
	if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(secret) {
		t.Errorf("secret %q: want 32 base32 characters (160 bits)", secret)
	}
	if k.ID == "" || k.Type != store.MFATypeTOTP || k.Status != store.MFAStatusPending || !k.CreatedAt.Equal(mfaEpoch) || k.LastStep != 0 {
		t.Errorf("new key record = %+v", k)
	}
	// The record holds the secret sealed, never in the clear.
	if !strings.HasPrefix(k.Secret, "v1:") || strings.Contains(strings.ToUpper(k.Secret), secret) {
		t.Errorf("stored secret %q is not sealed", k.Secret)
	}
	if _, other, _ := newTestKey(t, m); other == secret {
		t.Error("two keys got the same secret")
	}
}

// TestMFACheckAcceptsOathtoolCodesInTheWindow: codes computed by oathtool
// for the current step and one step either side are accepted and report
// their step; two steps away they are refused.
func TestMFACheckAcceptsOathtoolCodesInTheWindow(t *testing.T) {
	t.Parallel()
	m := newTestMFA(t, storetest.OpenBolt(t))
	k, secret, _ := newTestKey(t, m)
	now := mfaEpoch.Add(10 * time.Second) // inside step 58907520
	const cur = 58907520
	for _, c := range []struct {
		name    string
		at      time.Time
		want    uint64
		wantErr error
	}{
		{"current step", now, cur, nil},
		{"previous step", now.Add(-30 * time.Second), cur - 1, nil},
		{"next step", now.Add(30 * time.Second), cur + 1, nil},
		{"two steps back", now.Add(-60 * time.Second), 0, ErrCodeInvalid},
		{"two steps ahead", now.Add(60 * time.Second), 0, ErrCodeInvalid},
	} {
		code := oathCodeAt(t, secret, c.at)
		step, err := m.Check("user-1", k, code, now)
		if !errors.Is(err, c.wantErr) || step != c.want {
			t.Errorf("%s: Check(%s) = %d, %v; want %d, %v", c.name, code, step, err, c.want, c.wantErr)
		}
	}
	// Spaces as apps display them do not matter.
	code := oathCodeAt(t, secret, now)
	if _, err := m.Check("user-1", k, code[:3]+" "+code[3:], now); err != nil {
		t.Errorf("code with a space: %v", err)
	}
}

// TestMFACodeWeComputeValidatesInOathtool: the library we build on
// (pquerna/otp) and oathtool agree, for the secret of our URI, at several
// instants, in both directions.
func TestMFACodeWeComputeValidatesInOathtool(t *testing.T) {
	t.Parallel()
	m := newTestMFA(t, storetest.OpenBolt(t))
	k, secret, _ := newTestKey(t, m)
	for _, at := range []time.Time{mfaEpoch, mfaEpoch.Add(29 * time.Second), mfaEpoch.Add(time.Hour + 7*time.Second), time.Date(2038, 1, 19, 3, 14, 8, 0, time.UTC)} {
		ours, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		if theirs := oathCodeAt(t, secret, at); theirs != ours {
			t.Errorf("at %v: oathtool says %s, we say %s", at, theirs, ours)
		}
		// oathtool's validation mode (exit 0 when the code matches).
		if out, err := runOathtool(t, "--totp", "-b", "-d", "6", "-w", "0", "--now", at.Format("2006-01-02 15:04:05 UTC"), secret, ours); err != nil {
			t.Errorf("at %v: oathtool refuses our code %s: %v %s", at, ours, err, out)
		}
		if _, err := m.Check("user-1", k, ours, at); err != nil {
			t.Errorf("at %v: Check refuses the code: %v", at, err)
		}
	}
}

// TestMFACheckRefusesReplays: a step at or before LastStep is a replay,
// whichever code of the window it is.
func TestMFACheckRefusesReplays(t *testing.T) {
	t.Parallel()
	m := newTestMFA(t, storetest.OpenBolt(t))
	k, secret, _ := newTestKey(t, m)
	now := mfaEpoch.Add(5 * time.Second)
	code := oathCodeAt(t, secret, now)
	step, err := m.Check("user-1", k, code, now)
	if err != nil {
		t.Fatal(err)
	}
	k.LastStep = step
	if _, err := m.Check("user-1", k, code, now); !errors.Is(err, ErrCodeReplayed) {
		t.Errorf("same code again: %v, want ErrCodeReplayed", err)
	}
	// Still a replay 30 s later, while the code is in the window.
	if _, err := m.Check("user-1", k, code, now.Add(30*time.Second)); !errors.Is(err, ErrCodeReplayed) {
		t.Errorf("same code a step later: %v, want ErrCodeReplayed", err)
	}
	// The previous step's code is older than the last used one.
	if _, err := m.Check("user-1", k, oathCodeAt(t, secret, now.Add(-30*time.Second)), now); !errors.Is(err, ErrCodeReplayed) {
		t.Errorf("older code: %v, want ErrCodeReplayed", err)
	}
	// The next step's code is fresh.
	if got, err := m.Check("user-1", k, oathCodeAt(t, secret, now.Add(30*time.Second)), now); err != nil || got != step+1 {
		t.Errorf("next code: %d, %v; want %d", got, err, step+1)
	}
}

func TestMFACheckRefusesMalformedCodes(t *testing.T) {
	t.Parallel()
	m := newTestMFA(t, storetest.OpenBolt(t))
	k, _, _ := newTestKey(t, m)
	for _, code := range []string{"", "12345", "1234567", "12a456", "١٢٣٤٥٦", "-12345", "123456\x00"} {
		if _, err := m.Check("user-1", k, code, mfaEpoch); !errors.Is(err, ErrCodeInvalid) {
			t.Errorf("Check(%q) = %v, want ErrCodeInvalid", code, err)
		}
	}
}

// TestMFASealedSecretIsBoundToItsUserKeyAndCluster: a sealed secret opens
// on every node of the cluster (one key in the store), not in another
// user's or key's record, not with another cluster's key.
func TestMFASealedSecretIsBoundToItsUserKeyAndCluster(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	m := newTestMFA(t, s)
	k, secret, _ := newTestKey(t, m)
	code := oathCodeAt(t, secret, mfaEpoch)
	if _, err := newTestMFA(t, s).Check("user-1", k, code, mfaEpoch); err != nil {
		t.Errorf("second node on the same store: %v", err)
	}
	if _, err := m.Check("user-2", k, code, mfaEpoch); !errors.Is(err, ErrSecretUnreadable) {
		t.Errorf("other user: %v, want ErrSecretUnreadable", err)
	}
	moved := k
	moved.ID = "other-key"
	if _, err := m.Check("user-1", moved, code, mfaEpoch); !errors.Is(err, ErrSecretUnreadable) {
		t.Errorf("other key ID: %v, want ErrSecretUnreadable", err)
	}
	if _, err := newTestMFA(t, storetest.OpenBolt(t)).Check("user-1", k, code, mfaEpoch); !errors.Is(err, ErrSecretUnreadable) {
		t.Errorf("other cluster: %v, want ErrSecretUnreadable", err)
	}
	for _, bad := range []string{"", "v1:", "v1:!!!", "v2:" + strings.TrimPrefix(k.Secret, "v1:"), k.Secret[:len(k.Secret)-2]} {
		b := k
		b.Secret = bad
		if _, err := m.Check("user-1", b, code, mfaEpoch); !errors.Is(err, ErrSecretUnreadable) {
			t.Errorf("secret %q: %v, want ErrSecretUnreadable", bad, err)
		}
	}
}

func TestMFAConcurrentNewMFAAgreeOnOneKey(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	const n = 8
	ms := make([]*MFA, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m, err := NewMFA(context.Background(), s)
			if err != nil {
				t.Error(err)
			}
			ms[i] = m
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	k, secret, _ := newTestKey(t, ms[0])
	code := oathCodeAt(t, secret, mfaEpoch)
	for i, m := range ms {
		if _, err := m.Check("user-1", k, code, mfaEpoch); err != nil {
			t.Errorf("node %d cannot open node 0's secret: %v", i, err)
		}
	}
}

func TestMFANewMFARefusesACorruptKey(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	if err := s.PutSetting(context.Background(), SettingMFAKey, []byte("c2hvcnQ=")); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMFA(context.Background(), s); err == nil {
		t.Fatal("NewMFA accepted a 5-byte key")
	}
}

func TestMFABackupCodes(t *testing.T) {
	t.Parallel()
	codes, hashes, err := NewBackupCodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != BackupCodeCount || len(hashes) != BackupCodeCount {
		t.Fatalf("%d codes, %d hashes; want %d", len(codes), len(hashes), BackupCodeCount)
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if !regexp.MustCompile(`^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$`).MatchString(c) {
			t.Errorf("code %q: want four groups of four base32 characters", c)
		}
		if seen[c] {
			t.Errorf("code %q twice", c)
		}
		seen[c] = true
		if strings.Contains(strings.Join(hashes, ","), strings.ReplaceAll(c, "-", "")) {
			t.Errorf("hashes hold code %q", c)
		}
		if got := MatchBackupCode(hashes, c); got != i {
			t.Errorf("MatchBackupCode(%q) = %d, want %d", c, got, i)
		}
		if got := MatchBackupCode(hashes, strings.ToLower(strings.ReplaceAll(c, "-", " "))); got != i {
			t.Errorf("MatchBackupCode(lower case, spaces) = %d, want %d", got, i)
		}
	}
	for _, wrong := range []string{"", "AAAA-AAAA-AAAA-AAAA", codes[0][:18], codes[0] + "A", hashes[0]} {
		if got := MatchBackupCode(hashes, wrong); got != -1 {
			t.Errorf("MatchBackupCode(%q) = %d, want -1", wrong, got)
		}
	}
}

func TestMFANewSecret(t *testing.T) {
	t.Parallel()
	secret, hash, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 43 || strings.Contains(hash, secret) || !SecretMatches(hash, secret) {
		t.Errorf("secret %q hash %q", secret, hash)
	}
	other, _, _ := NewSecret()
	if other == secret || SecretMatches(hash, other) || SecretMatches(hash, "") || SecretMatches("", secret) {
		t.Error("secrets are not distinct or a wrong one matches")
	}
}
