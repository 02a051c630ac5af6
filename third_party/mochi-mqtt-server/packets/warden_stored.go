// SPDX-License-Identifier: MIT

package packets

// warden patch 26: Packets (the server's retained message store) holds a
// small value per packet instead of the whole 800-byte Packet. A retained
// publish uses a handful of Packet's fields; the CONNECT parameters, the
// subscription filters, the reason codes and the MQTT 5 properties are
// almost always empty. A Packet with anything outside those fields is kept
// whole, behind a pointer, so Get returns exactly the Packet given to Add.

// storedPacket is one packet of Packets: 112 bytes, small enough for the
// map to keep it in its own slots (a map value over 128 bytes is allocated
// on its own).
type storedPacket struct {
	full    *Packet     // the whole packet, when it does not fit the fields below; nil otherwise
	props   *Properties // nil when all zero
	topic   string
	origin  string
	payload []byte
	created int64
	expiry  int64
	fh      FixedHeader
	version byte
}

// storePacket returns the stored form of pk.
func storePacket(pk *Packet) storedPacket {
	sp := storedPacket{created: pk.Created, expiry: pk.Expiry, version: pk.ProtocolVersion}
	if !pk.onlyPublishFields() {
		full := *pk
		sp.full = &full
		return sp
	}
	sp.topic, sp.origin, sp.payload, sp.fh = pk.TopicName, pk.Origin, pk.Payload, pk.FixedHeader
	if !pk.Properties.isZero() {
		props := pk.Properties
		sp.props = &props
	}
	return sp
}

// packet returns the Packet sp was stored from.
func (sp *storedPacket) packet() Packet {
	if sp.full != nil {
		return *sp.full
	}
	pk := Packet{
		TopicName:       sp.topic,
		Origin:          sp.origin,
		Payload:         sp.payload,
		FixedHeader:     sp.fh,
		Created:         sp.created,
		Expiry:          sp.expiry,
		ProtocolVersion: sp.version,
	}
	if sp.props != nil {
		pk.Properties = *sp.props
	}
	return pk
}

// onlyPublishFields reports whether every field of pk that storedPacket
// does not hold is zero. TestStoredPacketKeepsEveryField fails when a field
// is added to Packet, ConnectParams or Properties and not here.
func (pk *Packet) onlyPublishFields() bool {
	return pk.Connect.isZero() && pk.ReasonCodes == nil && pk.Filters == nil && pk.Mods == (Mods{}) &&
		pk.PacketID == 0 && !pk.SessionPresent && pk.ReasonCode == 0 && pk.ReservedBit == 0 && !pk.Ignore
}

func (c *ConnectParams) isZero() bool {
	return c.WillProperties.isZero() && c.Password == nil && c.Username == nil && c.ProtocolName == nil &&
		c.WillPayload == nil && c.ClientIdentifier == "" && c.WillTopic == "" && c.Keepalive == 0 &&
		!c.PasswordFlag && !c.UsernameFlag && c.WillQos == 0 && !c.WillFlag && !c.WillRetain && !c.Clean
}

func (p *Properties) isZero() bool {
	return p.CorrelationData == nil && p.SubscriptionIdentifier == nil && p.AuthenticationData == nil &&
		p.User == nil && p.ContentType == "" && p.ResponseTopic == "" && p.AssignedClientID == "" &&
		p.AuthenticationMethod == "" && p.ResponseInfo == "" && p.ServerReference == "" &&
		p.ReasonString == "" && p.MessageExpiryInterval == 0 && p.SessionExpiryInterval == 0 &&
		p.WillDelayInterval == 0 && p.MaximumPacketSize == 0 && p.ServerKeepAlive == 0 &&
		p.ReceiveMaximum == 0 && p.TopicAliasMaximum == 0 && p.TopicAlias == 0 && p.PayloadFormat == 0 &&
		!p.PayloadFormatFlag && !p.SessionExpiryIntervalFlag && !p.ServerKeepAliveFlag &&
		p.RequestProblemInfo == 0 && !p.RequestProblemInfoFlag && p.RequestResponseInfo == 0 &&
		!p.TopicAliasFlag && p.MaximumQos == 0 && !p.MaximumQosFlag && p.RetainAvailable == 0 &&
		!p.RetainAvailableFlag && p.WildcardSubAvailable == 0 && !p.WildcardSubAvailableFlag &&
		p.SubIDAvailable == 0 && !p.SubIDAvailableFlag && p.SharedSubAvailable == 0 && !p.SharedSubAvailableFlag
}
