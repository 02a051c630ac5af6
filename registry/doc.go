// Package registry owns the client registry: devices register themselves
// (over HTTP, or by connecting over MQTT with an unknown username while the
// registry is open), an admin confirms, and the device gets its user, and
// for a CSR a client certificate from the internal CA.
//
// The open/locked state and the requests live in the store, so every node
// sharing it serves the same registry. Passwords are hashed on arrival;
// a device's repeated request must carry the same credentials as its
// stored request, so nobody can take over another device's registration.
// The HTTP routes are served by admin/; the MQTT hook calls
// ConnectAttempt.
package registry
