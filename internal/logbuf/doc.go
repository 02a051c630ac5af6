// Package logbuf is test support: a goroutine-safe buffer that tests hand
// to a logger or an audit trail written from other goroutines (clients,
// listeners, a change feed) and then read. It imports only the standard
// library and is imported only by tests.
package logbuf
