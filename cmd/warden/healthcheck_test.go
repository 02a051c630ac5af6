package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	for _, c := range []struct {
		name   string
		args   []string
		env    map[string]string
		status int
		want   int
	}{
		{"the configured port answering 200 is healthy", nil, map[string]string{"WARDEN_HTTP_ADDR": ":" + port}, 200, exitOK},
		{"any bind host is probed on loopback", nil, map[string]string{"WARDEN_HTTP_ADDR": "0.0.0.0:" + port}, 200, exitOK},
		{"503 is unhealthy", nil, map[string]string{"WARDEN_HTTP_ADDR": ":" + port}, 503, exitFail},
		{"an explicit URL wins", []string{srv.URL + "/healthz"}, map[string]string{"WARDEN_HTTP_ADDR": ":1"}, 200, exitOK},
		{"nothing listening is unhealthy", nil, map[string]string{"WARDEN_HTTP_ADDR": "127.0.0.1:1"}, 200, exitFail},
		{"a port chosen at start cannot be probed", nil, map[string]string{"WARDEN_HTTP_ADDR": ":0"}, 200, exitConfig},
		{"two arguments are refused", []string{"a", "b"}, nil, 200, exitConfig},
	} {
		t.Run(c.name, func(t *testing.T) {
			status = c.status
			var out strings.Builder
			if got := healthcheck(c.args, env(c.env), &out); got != c.want {
				t.Errorf("exit %d, want %d; output %q", got, c.want, out.String())
			}
		})
	}
}
