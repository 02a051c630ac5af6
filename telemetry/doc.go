// Package telemetry owns what the packages that expose Prometheus metrics
// (store, authhook, admin) share: registering a collector on a registry
// that other components may already have registered it with.
//
// It must not hold metrics of its own, serve them or keep package-level
// state: each package defines and documents its metrics (docs/metrics.md),
// and the binary owns the registry. It imports only the Prometheus client
// and the standard library, so every package may use it.
package telemetry
