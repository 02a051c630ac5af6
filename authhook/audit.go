package authhook

import (
	"context"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/warden-mqtt/warden/audit"
)

// auditRefusal records a refused CONNECT in the audit trail. why is one of
// authenticate's fixed phrases; the password never leaves the packet.
func (h *Hook) auditRefusal(ctx context.Context, cl *mqtt.Client, username, why string) {
	h.opts.Audit.AuthFailure(ctx, audit.AuthFailure{
		Channel:  audit.ChannelMQTT,
		User:     username,
		ClientID: cl.ID,
		Remote:   cl.Net.Remote,
		Reason:   why,
	})
}
