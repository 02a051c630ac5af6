package admin

// registerRegistry serves /api/client-registry.
func (s *Server) registerRegistry() {}
