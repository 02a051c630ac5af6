package directory

import "time"

// SetNow replaces the provider's clock, so cache expiry is tested without
// sleeping.
func SetNow(p *Provider, now func() time.Time) { p.now = now }
