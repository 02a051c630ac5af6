package credential

import (
	"slices"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// MFAActive reports whether m holds an active key: the user's password is
// then one factor of two, for the HTTP login and for MQTT alike.
func MFAActive(m *store.MFAState) bool {
	return m != nil && slices.ContainsFunc(m.Keys, func(k store.MFAKey) bool { return k.Status == store.MFAStatusActive })
}

// MFALocked reports whether too many wrong MFA codes lock the user at now
// (the lock is stored, so every node and every surface sees it).
func MFALocked(m *store.MFAState, now time.Time) bool {
	return m != nil && now.Before(m.LockedUntil)
}
