package directory

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets cover a directory call from a LAN bind (a millisecond)
// to the default timeout.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// Register exposes the provider's counters (Stats) and the latency of its
// directory calls on reg:
//
//	warden_ldap_binds_total          successful binds of users (the directory said yes)
//	warden_ldap_bind_failures_total  refused logins (wrong password, unknown or disabled user)
//	warden_ldap_unavailable_total    calls the directory did not answer (down, timeout)
//	warden_ldap_cache_hits_total     logins answered from the bind cache
//	warden_ldap_request_seconds      time of each Authenticate that asked the directory
func (p *Provider) Register(reg prometheus.Registerer) error {
	counter := func(name, help string, f func(Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(p.Stats())) })
	}
	p.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "warden_ldap_request_seconds",
		Help: "Time of each directory login that asked the directory (find, bind, groups), whatever its outcome.", Buckets: latencyBuckets})
	for _, c := range []prometheus.Collector{
		counter("warden_ldap_binds_total", "Directory logins the directory accepted.", func(s Stats) uint64 { return s.Binds }),
		counter("warden_ldap_bind_failures_total", "Directory logins refused: wrong password, unknown or disabled user.", func(s Stats) uint64 { return s.BindFailures }),
		counter("warden_ldap_unavailable_total", "Directory calls the directory did not answer (down or timed out).", func(s Stats) uint64 { return s.Unavailable }),
		counter("warden_ldap_cache_hits_total", "Directory logins answered from the bind cache.", func(s Stats) uint64 { return s.CacheHits }),
		p.latency,
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// observe records the time of one call to the directory, if Register ran.
func (p *Provider) observe(start time.Time) {
	if h := p.latency; h != nil {
		h.Observe(time.Since(start).Seconds())
	}
}
