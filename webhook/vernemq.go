package webhook

import "net/http"

// vernemqRoutes adds the VerneMQ webhook endpoints.
func (h *Handler) vernemqRoutes(routes map[string]http.HandlerFunc) {}
