package authhook_test

import (
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/store"
)

// TestWillTopicOverLimitsAfterPrefixRefused: a will topic within the
// topic limits as the client sent it, but over them once the user's
// publish prefix is prepended, is refused at CONNECT the way Mochi refuses
// a will topic over the limits (MQTT 5 0x90 "topic name invalid", 3.1.1
// 5), instead of being accepted and then dropped without a word when the
// client goes. One level less connects.
func TestWillTopicOverLimitsAfterPrefixRefused(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "deep", "deep-secret-12", []acl.Permission{perm("plant1/dev/#", acl.OpWrite)}, func(u *store.User) { u.MQTTPublishPrefix = "plant1/dev/" })
	levels := func(k int) string { return strings.Repeat("l/", k-1) + "l" }
	// The prefix adds two levels: the client's 127 become 129.
	over, within := levels(broker.DefaultMaxTopicLevels-1), levels(broker.DefaultMaxTopicLevels-2)
	for _, v := range versions {
		want := map[byte]byte{4: 5, 5: 0x90}[v]
		if _, code := n.connect(t, connectOpts{version: v, username: "deep", password: "deep-secret-12", clientID: "deep-" + vname(v), clean: true, willTopic: over}); code != want {
			t.Errorf("%s: will of %d levels with a 2-level prefix (limit %d): CONNACK 0x%02x, want 0x%02x",
				vname(v), broker.DefaultMaxTopicLevels-1, broker.DefaultMaxTopicLevels, code, want)
		}
		if _, code := n.connect(t, connectOpts{version: v, username: "deep", password: "deep-secret-12", clientID: "deep-ok-" + vname(v), clean: true, willTopic: within}); code != 0 {
			t.Errorf("%s: will at the limit once prefixed: CONNACK 0x%02x, want 0", vname(v), code)
		}
	}
}
