// Package storetest holds the contract suite every store.Store
// implementation must pass, and the helpers every package's tests use to
// get a store: a real embedded one, or a real Redis one on a redis-server
// started for the test.
//
// A backend's test calls Run with a function that opens a fresh, empty
// store; the suite asserts only what a caller of store.Store can observe,
// so the embedded and the Redis implementations are held to exactly the
// same behaviour. OpenBolt and OpenRedis open a store that is closed when
// the test ends. StartRedis runs a throwaway redis-server on a loopback
// port; a missing redis-server fails the test rather than skipping it, so
// the Redis implementation is never silently left untested.
package storetest
