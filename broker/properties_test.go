package broker

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// everyProperty sets every MQTT 5 property.
func everyProperty() packets.Properties {
	return packets.Properties{
		PayloadFormat: 1, PayloadFormatFlag: true, MessageExpiryInterval: 60, ContentType: "text/plain",
		ResponseTopic: "reply/1", CorrelationData: []byte{1, 2}, SubscriptionIdentifier: []int{5},
		SessionExpiryInterval: 30, SessionExpiryIntervalFlag: true, AssignedClientID: "assigned",
		ServerKeepAlive: 20, ServerKeepAliveFlag: true, AuthenticationMethod: "m", AuthenticationData: []byte{9},
		RequestProblemInfo: 1, RequestProblemInfoFlag: true, WillDelayInterval: 10, RequestResponseInfo: 1,
		ResponseInfo: "ri", ServerReference: "other", ReasonString: "why", ReceiveMaximum: 10,
		TopicAliasMaximum: 5, TopicAlias: 3, TopicAliasFlag: true, MaximumQos: 1, MaximumQosFlag: true,
		RetainAvailable: 1, RetainAvailableFlag: true, User: []packets.UserProperty{{Key: "k", Val: "v"}},
		MaximumPacketSize: 4096, WildcardSubAvailable: 1, WildcardSubAvailableFlag: true,
		SubIDAvailable: 1, SubIDAvailableFlag: true, SharedSubAvailable: 1, SharedSubAvailableFlag: true,
	}
}

// TestPropertiesEncodedOnlyWhereMQTT5AllowsThem (MQTT 5 §2.2.2.2 and
// §3.3.2.3; patch 18, which turned the property/packet table into an
// array): a PUBLISH given every property carries exactly those MQTT 5
// allows in a PUBLISH, and a CONNACK exactly those it allows in a
// CONNACK, read back with Mochi's own decoder.
func TestPropertiesEncodedOnlyWhereMQTT5AllowsThem(t *testing.T) {
	roundTrip := func(pk packets.Packet, encode func(*packets.Packet, *bytes.Buffer) error, decode func(*packets.Packet, []byte) error) packets.Properties {
		t.Helper()
		var buf bytes.Buffer
		if err := encode(&pk, &buf); err != nil {
			t.Fatal(err)
		}
		first, body, err := mqtttest.ReadPacket(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		out := packets.Packet{ProtocolVersion: 5}
		if err := out.FixedHeader.Decode(first); err != nil {
			t.Fatal(err)
		}
		out.FixedHeader.Remaining = len(body)
		if err := decode(&out, body); err != nil {
			t.Fatal(err)
		}
		return out.Properties
	}
	pub := roundTrip(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5, TopicName: "a/b",
		Properties: everyProperty(), Mods: packets.Mods{AllowResponseInfo: true}},
		(*packets.Packet).PublishEncode, (*packets.Packet).PublishDecode)
	want := packets.Properties{PayloadFormat: 1, PayloadFormatFlag: true, MessageExpiryInterval: 60, ContentType: "text/plain",
		ResponseTopic: "reply/1", CorrelationData: []byte{1, 2}, SubscriptionIdentifier: []int{5}, TopicAlias: 3, TopicAliasFlag: true,
		User: []packets.UserProperty{{Key: "k", Val: "v"}}}
	if !propsEqual(pub, want) {
		t.Errorf("PUBLISH carried %+v\nwant %+v", pub, want)
	}
	ack := roundTrip(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: 5,
		Properties: everyProperty(), Mods: packets.Mods{AllowResponseInfo: true}},
		(*packets.Packet).ConnackEncode, (*packets.Packet).ConnackDecode)
	want = packets.Properties{SessionExpiryInterval: 30, SessionExpiryIntervalFlag: true, AssignedClientID: "assigned",
		ServerKeepAlive: 20, ServerKeepAliveFlag: true, AuthenticationMethod: "m", AuthenticationData: []byte{9},
		ResponseInfo: "ri", ServerReference: "other", ReasonString: "why", ReceiveMaximum: 10, TopicAliasMaximum: 5,
		MaximumQos: 1, MaximumQosFlag: true, RetainAvailable: 1, RetainAvailableFlag: true,
		User: []packets.UserProperty{{Key: "k", Val: "v"}}, MaximumPacketSize: 4096,
		WildcardSubAvailable: 1, WildcardSubAvailableFlag: true, SubIDAvailable: 1, SubIDAvailableFlag: true,
		SharedSubAvailable: 1, SharedSubAvailableFlag: true}
	if !propsEqual(ack, want) {
		t.Errorf("CONNACK carried %+v\nwant %+v", ack, want)
	}
}

// propsEqual compares two Properties field by field as they print.
func propsEqual(a, b packets.Properties) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}
