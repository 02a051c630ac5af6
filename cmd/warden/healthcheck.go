package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// healthcheckUsage is its entry in `warden --help`, after the other
// commands.
const healthcheckUsage = `  warden healthcheck [URL]
        exit 0 when URL (default: /healthz on 127.0.0.1 at the port of
        WARDEN_HTTP_ADDR, :8080, over HTTPS when WARDEN_HTTP_TLS or
        WARDEN_HTTP_TLS_CERT is set) answers 200, else 1: the container
        HEALTHCHECK of an image without a shell.
`

// healthcheckTimeout bounds the whole probe; Docker's own timeout is the
// backstop.
const healthcheckTimeout = 3 * time.Second

// healthcheck is `warden healthcheck [URL]`: the container HEALTHCHECK of
// an image without a shell or curl (docker/Dockerfile). It GETs URL, by
// default /healthz on the loopback port of --http-addr as set in the
// environment (WARDEN_HTTP_ADDR, default :8080; https when WARDEN_HTTP_TLS
// or WARDEN_HTTP_TLS_CERT is set), and exits 0 on 200, 1 otherwise.
func healthcheck(args []string, getenv func(string) string, stderr io.Writer) int {
	url, err := healthcheckURL(args, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "warden healthcheck: %v\n", err)
		return exitConfig
	}
	client := http.DefaultClient
	if len(args) == 0 && strings.HasPrefix(url, "https://") {
		// The default probe dials its own loopback port, and the admin
		// certificate names the host, not 127.0.0.1; it sends no
		// credential and only reads the status, so it skips verification.
		client = &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "warden healthcheck: %v\n", err)
		return exitConfig
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "warden healthcheck: %v\n", err)
		return exitFail
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "warden healthcheck: %s answered %s\n", url, resp.Status)
		return exitFail
	}
	return exitOK
}

// healthcheckURL is the URL argument, or /healthz on the loopback address
// of the configured HTTP port.
func healthcheckURL(args []string, getenv func(string) string) (string, error) {
	switch len(args) {
	case 0:
	case 1:
		if strings.HasPrefix(args[0], "-") {
			return "", fmt.Errorf("unknown flag %s: healthcheck takes only a URL (warden healthcheck --help)", args[0])
		}
		return args[0], nil
	default:
		return "", fmt.Errorf("want at most one argument, the URL to probe")
	}
	addr := getenv("WARDEN_HTTP_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return "", fmt.Errorf("WARDEN_HTTP_ADDR %q has no fixed port to probe; pass the URL", addr)
	}
	scheme := "http"
	if tlsOn, _ := strconv.ParseBool(getenv("WARDEN_HTTP_TLS")); tlsOn || getenv("WARDEN_HTTP_TLS_CERT") != "" {
		scheme = "https"
	}
	// Loopback whatever the bind host: the probe runs inside the
	// container, and 0.0.0.0 or [::] are not addresses to dial.
	return scheme + "://" + net.JoinHostPort("127.0.0.1", port) + "/healthz", nil
}
