package webhook

import "net/http"

// VerneMQAPI is VerneMQ's HTTP API (vmq-admin api-key add; the HTTP
// listener's /api/v1): URL "" means none.
type VerneMQAPI struct {
	URL string // e.g. http://vernemq:8888
	Key string // API key (secret)
}

// vernemqRoutes adds the VerneMQ webhook endpoints.
func (h *Handler) vernemqRoutes(routes map[string]http.HandlerFunc) {}
