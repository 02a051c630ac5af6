package authhook

// KnownClients is the number of clients the hook keeps state for:
// connected, offline sessions, and gone clients kept for a delayed will.
func (h *Hook) KnownClients() (n int) {
	h.conns.Range(func(_, _ any) bool { n++; return true })
	return n
}

// OfflineSessions is the length of username's list of offline sessions.
func (h *Hook) OfflineSessions(username string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.offline[username]; q != nil {
		return q.Len()
	}
	return 0
}
