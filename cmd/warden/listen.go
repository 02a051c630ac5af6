package main

import (
	"fmt"
	"net"
)

// sockets are the bound sockets of every configured listener (nil when
// off). run binds them first, before it opens the store: a port in use
// (another broker on 1883) then fails the start before the admin user, and
// its one-time generated password, exist.
type sockets struct {
	mqtt, mqtts, ws, http net.Listener
	// pprof serves the profiler (--pprof-addr); loopback only.
	pprof net.Listener
}

// bindSockets binds every configured listener address. On error the ones
// already bound are closed; the error names the flag to change.
func bindSockets(cfg Config) (*sockets, error) {
	var s sockets
	for _, l := range []struct {
		flag, env, addr string
		ln              *net.Listener
	}{
		{"--mqtt-addr", "WARDEN_MQTT_ADDR", cfg.MQTTAddr, &s.mqtt},
		{"--mqtts-addr", "WARDEN_MQTTS_ADDR", cfg.MQTTSAddr, &s.mqtts},
		{"--ws-addr", "WARDEN_WS_ADDR", cfg.WSAddr, &s.ws},
		{"--http-addr", "WARDEN_HTTP_ADDR", cfg.HTTPAddr, &s.http},
		{"--pprof-addr", "WARDEN_PPROF_ADDR", cfg.PprofAddr, &s.pprof},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s (%s): %w", l.flag, l.env, err)
		}
		*l.ln = ln
	}
	// Validate accepted only loopback hosts, localhost among them by
	// name: check what that name bound to as well (a hosts file may map
	// it elsewhere).
	if s.pprof != nil {
		if tcp, ok := s.pprof.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
			s.close()
			return nil, fmt.Errorf("--pprof-addr (WARDEN_PPROF_ADDR): %q bound to %s, which is not a loopback address; profiles show memory contents", cfg.PprofAddr, s.pprof.Addr())
		}
	}
	return &s, nil
}

// close closes every socket. The broker and the HTTP server close theirs
// when they stop; closing a listener again is harmless, so run defers
// close for the sockets no server has taken over on a failed start.
func (s *sockets) close() {
	for _, ln := range []net.Listener{s.mqtt, s.mqtts, s.ws, s.http, s.pprof} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}
