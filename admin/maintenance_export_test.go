package admin

// HoldMaintenance makes every backup and restore of s call hold (with
// "backup" or "restore") in the background before it touches the store,
// so a test keeps an operation running exactly as long as it needs.
// Tests only.
func HoldMaintenance(s *Server, hold func(op string)) {
	s.maint.mu.Lock()
	defer s.maint.mu.Unlock()
	s.maint.hold = hold
}
