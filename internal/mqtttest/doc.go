// Package mqtttest writes and reads raw MQTT control packets for tests
// that must see the bytes a broker sends, or send bytes no client library
// would: a CONNECT for MQTT 3.1.1 or 5, a fixed header claiming any
// length, and a reader that returns each packet's first byte and body.
//
// It is independent of the broker's own packet codec, so a test written
// with it does not share the code under test. It imports the standard
// library only and is imported by tests alone (broker, authhook,
// cmd/warden).
package mqtttest
