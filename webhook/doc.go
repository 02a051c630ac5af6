// Package webhook owns warden's answers to the auth webhooks of external
// brokers: VerneMQ's vmq_webhooks (auth_on_register, auth_on_publish,
// auth_on_subscribe and their MQTT 5 forms, on_client_offline/gone;
// vernemq.go) and EMQX 5's HTTP authenticator and authorizer (emqx.go).
// Like natscallout it translates and must not decide: admission comes from
// authhook.Hook.Decide, publish and subscribe decisions from
// authhook.Hook.Rights, so a client of those brokers is allowed exactly
// what warden's embedded broker would allow it. The handlers are mounted
// by admin on the admin listener, which authenticates the broker (client
// certificate or bearer token) before they run.
package webhook
