package main

import (
	"slices"
	"strings"
	"testing"
)

// TestFlagErrorsSayWhatToDo runs the binary with the mistakes a newcomer
// makes (issue 15, item 17): each exits 2 and says on stderr what is
// wrong and what to write instead, never the flag package's "parse error".
func TestFlagErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildWarden(t)
	dataDir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"a duration without a unit", []string{"--connect-timeout", "10"}, nil,
			`--connect-timeout: missing unit in duration "10"; use a unit, e.g. 10s`},
		{"a duration variable without a unit", nil, []string{"WARDEN_CONNECT_TIMEOUT=10"},
			`WARDEN_CONNECT_TIMEOUT: missing unit in duration "10"; use a unit, e.g. 10s`},
		{"a duration in days", []string{"--auth-backoff=7d"}, nil,
			`--auth-backoff: no unit d (days) in duration "7d"; use hours, e.g. 168h`},
		{"a duration in words", []string{"--shutdown-timeout", "soon"}, nil,
			`--shutdown-timeout: invalid duration "soon"; use a number with a unit (ns, us, ms, s, m, h), e.g. 10s`},
		{"a size with a unit", []string{"--mqtt-max-packet-size", "1MiB"}, nil,
			`--mqtt-max-packet-size: "1MiB" is not a whole number of bytes, without a unit; e.g. 1048576`},
		{"a count variable in words", nil, []string{"WARDEN_AUTH_MAX_FAILURES_USER=ten"},
			`WARDEN_AUTH_MAX_FAILURES_USER: "ten" is not a whole number; e.g. 10`},
		{"a number out of range", []string{"--mqtt-max-connections=99999999999999999999"}, nil,
			`--mqtt-max-connections: "99999999999999999999" is out of range`},
		{"a bool that is not one", []string{"--mfa=yes"}, nil, `--mfa: "yes" is not true or false`},
		{"a bool variable that is not one", nil, []string{"WARDEN_HTTP_TLS=on"}, `WARDEN_HTTP_TLS: "on" is not true or false`},
		{"a bool value after a space", []string{"--mfa", "false"}, nil,
			`--mfa takes its value after '=': write --mfa=false (--mfa alone means true)`},
		{"a misspelt flag", []string{"--mqtt-adr", ":1883"}, nil, "unknown flag --mqtt-adr; did you mean --mqtt-addr?"},
		{"a variable's name as a flag", []string{"--WARDEN_DATA_DIR", "/tmp"}, nil, "unknown flag --WARDEN_DATA_DIR; did you mean --data-dir?"},
		{"a misspelt --version", []string{"--verison"}, nil, "unknown flag --verison; did you mean --version?"},
		{"a flag nothing is near", []string{"--frobnicate"}, nil, "unknown flag --frobnicate\n"},
		{"a flag without its value", []string{"--mqtt-addr"}, nil, "--mqtt-addr needs a value, e.g. --mqtt-addr :1883"},
		{"three dashes", []string{"---mqtt-addr", ":1"}, nil, `bad flag syntax "---mqtt-addr": write --name or --name=value`},
		{"an address without a port", []string{"--mqtt-addr", "1883"}, nil,
			`--mqtt-addr (WARDEN_MQTT_ADDR): "1883" is not host:port: missing port in address; e.g. :1883 (all interfaces) or 127.0.0.1:1883`},
		{"three dashes and a value", []string{"---admin-password=Secret_pw_1234"}, nil, `bad flag syntax "---admin-password": write --name or --name=value`},
		{"a misspelt command", []string{"bakup", "--out", "x"}, nil, `unexpected argument "bakup"; did you mean the command backup?`},
		{"a misspelt flag of a command", []string{"backup", "--out", "x", "--include-kyes"}, nil,
			"unknown flag --include-kyes; did you mean --include-keys?"},
		{"a duration of a command in words", []string{"restore", "x.gz", "--restore-max-size", "big"}, nil,
			`--restore-max-size: "big" is not a whole number of bytes, without a unit; e.g. 268435456`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := bCommand(t, bin, append([]string{"WARDEN_DATA_DIR=" + dataDir}, c.env...), "", c.args...)
			if code != exitConfig {
				t.Errorf("exit %d, want %d", code, exitConfig)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, stderr)
			}
			for _, bad := range []string{"parse error", "flag provided but not defined", "for flag -"} {
				if strings.Contains(stderr, bad) {
					t.Errorf("stderr has the flag package's %q:\n%s", bad, stderr)
				}
			}
			if strings.Contains(stderr, "Secret_pw_1234") {
				t.Errorf("stderr echoes a password:\n%s", stderr)
			}
			if stdout != "" {
				t.Errorf("an error printed on stdout: %q", stdout)
			}
		})
	}
}

func TestNearestSuggestsOnlyCloseNames(t *testing.T) {
	t.Parallel()
	names := []string{"mqtt-addr", "mqtts-addr", "ws-addr", "http-addr", "data-dir", "redis-url", "mfa", "mfa-mqtt-password", "out", "help"}
	for _, c := range []struct {
		name string
		want []string
	}{
		{"mqtt-adr", []string{"mqtt-addr"}},
		{"data_dir", []string{"data-dir"}},
		{"datadir", []string{"data-dir"}},
		{"DATA-DIR", []string{"data-dir"}},
		{"WARDEN_REDIS_URL", []string{"redis-url"}},
		{"redis", []string{"redis-url"}},
		{"htp-addr", []string{"http-addr"}},
		{"mqtt-addrs", []string{"mqtt-addr"}},
		{"mqtts-adr", []string{"mqtts-addr"}},
		{"mqt-addr", []string{"mqtt-addr"}},
		{"hepl", []string{"help"}},
		{"mqtt", nil}, // a prefix of several
		{"port", nil}, // 2 edits from "out", half its length
		{"ws", nil},
		{"x", nil},
		{"frobnicate", nil},
	} {
		if got := nearest(c.name, names); !slices.Equal(got, c.want) {
			t.Errorf("nearest(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"mqtt-adr", "mqtt-addr", 1}, {"kitten", "sitting", 3}, {"tls-cret", "tls-cert", 1}, {"ca", "abc", 3},
	} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
