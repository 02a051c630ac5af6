package admin

// registerCertificates serves /api/certificates (the trusted-certificate
// inventory).
func (s *Server) registerCertificates() {}
