// Package admin owns warden's HTTP API, the Connectware auth-server
// contract: routing (net/http patterns), bearer-token authentication,
// authorization by http-context permissions, one file per resource, JSON
// errors mapped from domain errors in one place (errors.go), and the
// OpenAPI document of every route.
//
// Handlers decode, validate, call the account (the rules of user and role
// changes), store and credential packages, and render; they hold no
// business state. MQTT clients follow admin changes
// through the store's change feed (authhook), not through calls from here.
package admin
