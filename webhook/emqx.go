package webhook

import "net/http"

// emqxRoutes adds the EMQX 5 HTTP authentication and authorization
// endpoints.
func (h *Handler) emqxRoutes(routes map[string]http.HandlerFunc) {}
