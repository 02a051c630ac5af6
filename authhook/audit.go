package authhook

import (
	"context"

	"github.com/warden-mqtt/warden/audit"
)

// auditRefusal records a refused CONNECT in the audit trail. why is one of
// the fixed phrases of a refusal's reason; the password is never recorded.
func (h *Hook) auditRefusal(ctx context.Context, l *login, why string) {
	h.opts.Audit.AuthFailure(ctx, audit.AuthFailure{
		Channel:  audit.ChannelFor(audit.ChannelMQTT, why),
		User:     l.username,
		ClientID: l.ClientID,
		Remote:   l.Remote,
		Reason:   why,
	})
}
