// Package natscallout owns warden's NATS surface: the adapter that answers a
// NATS cluster's auth callouts (nats-server server/auth_callout.go) with
// warden's decisions. It translates, it must not decide: admission, refusal
// reasons, lockout and audit come from the surface-neutral core that the
// Mochi hook (authhook/) uses too, and this package only turns their answers
// into what NATS understands.
//
// Its pieces: callout.go answers the callout requests (Start, Service);
// kick.go disconnects, on every server, the clients a change of the model
// ends or alters (the server keeps the permissions warden signed until
// the user JWT expires, so a change must make the client reconnect);
// claims.go keeps each MQTT client ID for the first user admitted with it,
// in the shared store; issuer.go keeps the callout's signing key in the
// store; config.go prints the NATS configuration every node includes.
//
// The permission compiler (subjects.go): Permissions
// turns a user's mqtt permissions into the publish and subscribe allow
// lists of a NATS user JWT (github.com/nats-io/jwt/v2 Permissions),
// following the topic↔subject mapping of nats-server's MQTT listener
// (server/mqtt.go), so that an MQTT client of the cluster is allowed
// exactly what warden's acl allows it on warden's embedded broker. What
// NATS cannot express exactly is refused with ErrUnexpressible; the callout
// refuses such a connection with an audit reason rather than grant an
// approximation.
//
// What nats-server v2.15.3 checks against a client's permissions, and what
// it does not (read in server/mqtt.go and server/client.go):
//   - PUBLISH (QoS 0, 1, 2): the converted topic, as the client's own NATS
//     publish (processInboundClientMsg). A denied QoS 1 publish is still
//     acknowledged and dropped. Storing QoS 1/2 messages in the $MQTT_msgs,
//     $MQTT_qos2in and $MQTT_rmsgs streams and all JetStream API calls are
//     done by the account's internal client, not under the user's
//     permissions, so a user needs no $JS or $MQTT publish permission.
//   - SUBSCRIBE: every converted filter, as a NATS subscribe; for a filter
//     ending in "/#" also its parent subject ("a.>" and "a"), and either
//     refused fails the filter (SUBACK 0x80). The deliver subjects of QoS
//     1/2 consumers ("$MQTT.sub.<nuid>") and of PUBREL
//     ("$MQTT.deliver.pubrel.<…>") skip the allow list for MQTT clients
//     (canSubscribeInternal) but not the deny list; filters starting with
//     "$MQTT." are refused to MQTT clients outright. Sessions and retained
//     messages ($MQTT_sess, $MQTT_rmsgs) are internal.
//   - Deliveries are not checked against the allow list again (only against
//     deny entries): a permission removed while a client is connected stays
//     in force for it until the client is disconnected, which is why the
//     callout kicks affected clients. Per-delivery checks need warden's
//     embedded broker.
//   - A subscribe allow entry "X.*" also grants the subscription "X.>"
//     (server/sublist.go matches the requested '>' token as a literal), and
//     NATS's '*' and '>' match first tokens starting with '$', unlike MQTT's
//     leading wildcards; Permissions refuses the permission sets for which
//     either would widen a grant.
//   - Shared subscriptions are not part of nats-server's MQTT listener: a
//     "$share/g/a" filter is an ordinary topic there, whose subject no
//     compiled permission allows, so it is refused where warden's embedded
//     broker would grant it on "a". That narrows, never widens.
package natscallout
