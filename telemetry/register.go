package telemetry

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterCollector registers c, or returns the collector already
// registered under the same description, so several components (two API
// servers, two hooks in a test) sharing one registry add up instead of
// failing.
func RegisterCollector[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
