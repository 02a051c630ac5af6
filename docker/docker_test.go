// Package docker_test checks docker/ without a Docker engine (none runs on
// CI): the binary builds static with the Dockerfile's flags, the Dockerfile
// keeps its promises (distroless, non-root, /data, ports, HEALTHCHECK) and
// the compose files hold the settings warden needs (Redis with AOF, warden
// on Redis, health checks, start order, volumes, non-root). When a compose
// client is installed, `config` validates the files as Docker would.
package docker_test

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// repoRoot is the module root, the Dockerfile's build context.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: %v", root, err)
	}
	return root
}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBinaryBuildsStatic builds cmd/warden as the Dockerfile does and
// checks the result runs on an image without libc: an ELF with no program
// interpreter and no shared libraries, and no build-machine paths.
func TestBinaryBuildsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dockerfile := read(t, "Dockerfile")
	for _, flag := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "./cmd/warden"} {
		if !strings.Contains(dockerfile, flag) {
			t.Fatalf("the Dockerfile's build lacks %s; keep this test in step with it", flag)
		}
	}
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "warden")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -X main.version=v0.0.0-docker-test", "-o", bin, "./cmd/warden")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("not an ELF binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter (dynamically linked)")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (err %v)", libs, err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(root)) {
		t.Errorf("the binary holds the build path %s despite -trimpath", root)
	}
	// The version the build arg stamps survives -s -w.
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "warden v0.0.0-docker-test ") {
		t.Errorf("warden --version printed %q (%v), want the stamped version first", out, err)
	}
}

// TestDockerfile checks the Dockerfile line by line: a golang builder, a
// distroless or scratch final stage with the binary as entrypoint, a
// non-root user, the /data volume, the MQTT and HTTP ports and a
// HEALTHCHECK that needs no shell.
func TestDockerfile(t *testing.T) {
	text := read(t, "Dockerfile")
	// Instructions, continuation lines joined, comments dropped.
	var ins []string
	var cur string
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if more, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur += more + " "
			continue
		}
		ins = append(ins, strings.Join(strings.Fields(cur+trimmed), " "))
		cur = ""
	}
	var froms []string
	for _, in := range ins {
		if strings.HasPrefix(in, "FROM ") {
			froms = append(froms, in)
		}
	}
	if len(froms) != 2 || !regexp.MustCompile(`^FROM golang:\S+ AS build$`).MatchString(froms[0]) {
		t.Fatalf("want a golang build stage and a final stage, got %q", froms)
	}
	final := froms[1]
	if !strings.Contains(final, "gcr.io/distroless/static") && final != "FROM scratch" {
		t.Errorf("final stage %q is neither distroless/static nor scratch", final)
	}
	// What the final stage must say, after its FROM.
	tail := ins[slices.Index(ins, final):]
	want := map[string]*regexp.Regexp{
		"non-root user":            regexp.MustCompile(`^USER 65532(:65532)?$`),
		"the /data volume":         regexp.MustCompile(`^VOLUME \["/data"\]$|^VOLUME /data$`),
		"the ports":                regexp.MustCompile(`^EXPOSE 1883 8883 8080$`),
		"a shell-free healthcheck": regexp.MustCompile(`^HEALTHCHECK .*CMD \["/usr/local/bin/warden", "healthcheck"\]$`),
		"the binary as entrypoint": regexp.MustCompile(`^ENTRYPOINT \["/usr/local/bin/warden"\]$`),
		"the data dir":             regexp.MustCompile(`^ENV .*WARDEN_DATA_DIR=/data`),
		"/data owned by the user":  regexp.MustCompile(`^COPY --from=build --chown=65532:65532 \S+ /data$`),
	}
	for what, re := range want {
		if !slices.ContainsFunc(tail, re.MatchString) {
			t.Errorf("final stage lacks %s (%s); instructions:\n%s", what, re, strings.Join(tail, "\n"))
		}
	}
	if slices.ContainsFunc(tail, func(s string) bool { return strings.HasPrefix(s, "USER root") || strings.HasPrefix(s, "USER 0") }) {
		t.Error("final stage runs as root")
	}
}

// compose is the part of a compose file these tests read.
type compose struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Command     []string          `yaml:"command"`
		User        string            `yaml:"user"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		StopGracePeriod string `yaml:"stop_grace_period"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func parseCompose(t *testing.T, name string) compose {
	t.Helper()
	var c compose
	dec := yaml.NewDecoder(strings.NewReader(read(t, name)))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s does not parse: %v", name, err)
	}
	return c
}

// TestCompose checks the settings warden depends on in compose.yaml and
// the second node of compose.node2.yaml.
func TestCompose(t *testing.T) {
	c := parseCompose(t, "compose.yaml")
	redis, ok := c.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	if !strings.HasPrefix(redis.Image, "redis:7") {
		t.Errorf("redis image %q, want Redis 7", redis.Image)
	}
	if i := slices.Index(redis.Command, "--appendonly"); i < 0 || i+1 >= len(redis.Command) || redis.Command[i+1] != "yes" {
		t.Errorf("redis command %q does not turn AOF on (--appendonly yes)", redis.Command)
	}
	if !slices.Equal(redis.Healthcheck.Test, []string{"CMD", "redis-cli", "ping"}) {
		t.Errorf("redis healthcheck %q", redis.Healthcheck.Test)
	}
	if len(redis.Ports) != 0 {
		t.Errorf("redis publishes ports %q; only warden needs it", redis.Ports)
	}

	declared := func(vols []string) {
		t.Helper()
		for _, v := range vols {
			name, _, _ := strings.Cut(v, ":")
			if _, ok := c.Volumes[name]; !ok && !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, ".") {
				t.Errorf("volume %q is not a declared named volume", name)
			}
		}
	}
	declared(redis.Volumes)
	if !slices.Contains(redis.Volumes, "redis-data:/data") {
		t.Errorf("redis data %q not on a named volume", redis.Volumes)
	}

	node2 := parseCompose(t, "compose.node2.yaml")
	for name := range node2.Volumes {
		c.Volumes[name] = nil
	}
	ports := map[string]string{}
	for _, name := range []string{"warden", "warden2"} {
		w, ok := c.Services[name]
		if !ok {
			if w, ok = node2.Services[name]; !ok {
				t.Fatalf("no %s service", name)
			}
		}
		if w.Image != "warden-mqtt/warden:local" || w.Build.Dockerfile != "docker/Dockerfile" || w.Build.Context != ".." {
			t.Errorf("%s: image %q built from %+v; want the local image built by docker/Dockerfile, never pulled", name, w.Image, w.Build)
		}
		if w.Environment["WARDEN_REDIS_URL"] != "redis://redis:6379/0" {
			t.Errorf("%s: WARDEN_REDIS_URL = %q, want the redis service", name, w.Environment["WARDEN_REDIS_URL"])
		}
		if w.DependsOn["redis"].Condition != "service_healthy" {
			t.Errorf("%s does not wait for a healthy redis", name)
		}
		if !slices.Equal(w.Healthcheck.Test, []string{"CMD", "/usr/local/bin/warden", "healthcheck"}) {
			t.Errorf("%s healthcheck %q", name, w.Healthcheck.Test)
		}
		if w.User != "65532:65532" {
			t.Errorf("%s runs as %q, want the non-root 65532:65532", name, w.User)
		}
		if w.StopGracePeriod == "" {
			t.Errorf("%s has no stop_grace_period above WARDEN_SHUTDOWN_TIMEOUT", name)
		}
		if !slices.ContainsFunc(w.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/data") }) {
			t.Errorf("%s keeps no /data volume", name)
		}
		declared(w.Volumes)
		for _, p := range w.Ports {
			host, _, _ := strings.Cut(p, ":")
			if other, dup := ports[host]; dup {
				t.Errorf("host port %s published by %s and %s", host, other, name)
			}
			ports[host] = name
		}
	}
	for _, p := range []string{"1883", "8883", "8080"} {
		if ports[p] != "warden" {
			t.Errorf("host port %s is not published by warden", p)
		}
	}
}

// TestComposeConfig validates the files with a compose client (`docker
// compose` or docker-compose, which make test installs); no Docker engine
// is needed for `config`.
func TestComposeConfig(t *testing.T) {
	var base []string
	if err := exec.Command("docker", "compose", "version").Run(); err == nil {
		base = []string{"docker", "compose"}
	} else if p, err := exec.LookPath("docker-compose"); err == nil {
		base = []string{p}
	} else {
		t.Fatal("no compose client: install docker-compose (make test installs it) or the docker compose plugin")
	}
	for _, files := range [][]string{{"compose.yaml"}, {"compose.yaml", "compose.node2.yaml"}, {"compose.cluster.yaml"}} {
		args := slices.Clone(base[1:])
		for _, f := range files {
			args = append(args, "-f", f)
		}
		args = append(args, "config", "-q")
		cmd := exec.Command(base[0], args...)
		cmd.Env = append(os.Environ(), "WARDEN_ADMIN_PASSWORD=", "WARDEN_NATS_PASSWORD=a-nats-password-1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s config %v: %v\n%s", base[0], files, err, out)
		}
	}
}

// TestComposeCluster checks what the NATS cluster of compose.cluster.yaml
// depends on: Redis with AOF, the callout configuration written before any
// NATS node starts and included by each, three JetStream+MQTT nodes that
// route to each other, and two warden nodes answering all three.
func TestComposeCluster(t *testing.T) {
	c := parseCompose(t, "compose.cluster.yaml")
	if r := c.Services["redis"]; !slices.Contains(r.Command, "--appendonly") || !slices.Contains(r.Command, "yes") {
		t.Errorf("redis runs without AOF: %v", r.Command)
	}
	conf := read(t, "nats/cluster.conf")
	for _, want := range []string{"jetstream {", "mqtt {", "server_name: $NATS_SERVER_NAME", "nats://nats1:6222", "nats://nats2:6222", "nats://nats3:6222", `include "warden/warden.conf"`} {
		if !strings.Contains(conf, want) {
			t.Errorf("nats/cluster.conf lacks %q", want)
		}
	}
	if cmd := strings.Join(c.Services["nats-config"].Command, " "); !strings.Contains(cmd, "warden nats-config > /etc/nats/warden/") {
		t.Errorf("nats-config service does not write the callout configuration: %s", cmd)
	}
	for _, n := range []string{"nats1", "nats2", "nats3"} {
		s := c.Services[n]
		if s.DependsOn["nats-config"].Condition != "service_completed_successfully" {
			t.Errorf("%s may start before its callout configuration is written", n)
		}
		if s.Environment["NATS_SERVER_NAME"] != n || !slices.Contains(s.Volumes, "nats-conf:/etc/nats/warden:ro") || len(s.Healthcheck.Test) == 0 {
			t.Errorf("%s: server name %q, volumes %v, health check %v", n, s.Environment["NATS_SERVER_NAME"], s.Volumes, s.Healthcheck.Test)
		}
	}
	for _, w := range []string{"warden1", "warden2"} {
		s := c.Services[w]
		if s.Environment["WARDEN_NATS_URL"] != "nats://nats1:4222,nats://nats2:4222,nats://nats3:4222" || !strings.HasPrefix(s.Environment["WARDEN_REDIS_URL"], "redis://redis:") {
			t.Errorf("%s: NATS %q, Redis %q", w, s.Environment["WARDEN_NATS_URL"], s.Environment["WARDEN_REDIS_URL"])
		}
		for _, n := range []string{"nats1", "nats2", "nats3"} {
			if s.DependsOn[n].Condition != "service_healthy" {
				t.Errorf("%s starts before %s is healthy (warden exits when NATS is unreachable at start)", w, n)
			}
		}
	}
}
