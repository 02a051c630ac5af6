//go:build !unix

package broker

// DefaultMaxConnections is Config.MaxConnections' default where the
// open-file limit cannot be read: fallbackMaxConnections.
func DefaultMaxConnections() int { return fallbackMaxConnections }
