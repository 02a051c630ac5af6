package admin

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes every route of the API (OpenAPI 3). It is
// written by hand; a test checks it against the registered routes both
// ways. The broker webhooks a server mounts are added to the document it
// serves (brokerhooks.go).
//
//go:embed openapi.json
var openAPIDocument []byte

func (s *Server) registerOpenAPI() {
	s.handle("GET /api/openapi.json", public, func(w http.ResponseWriter, _ *http.Request, _ *caller) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(s.openAPI)
		return err
	})
}
