package webhook

import "net/http"

// EMQXAPI is EMQX 5's REST API (an API key and its secret, created in the
// dashboard): URL "" means none.
type EMQXAPI struct {
	URL    string // e.g. http://emqx:18083
	Key    string
	Secret string // secret
}

// emqxRoutes adds the EMQX 5 HTTP authentication and authorization
// endpoints.
func (h *Handler) emqxRoutes(routes map[string]http.HandlerFunc) {}
