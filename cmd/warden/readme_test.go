package main

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/store/storetest"
)

// TestREADME follows README.md as a newcomer would, from "Start it" on:
// every ```sh block runs in order, in bash, against the real binary, and
// what the README's comments promise is checked.
//
// How a block is run is said by an HTML comment just above it (invisible
// on GitHub), so that no block is left out silently:
//
//	<!-- readme-test: start -->     builds and starts warden: typed into "terminal 1", whose
//	                                last command (warden) keeps running in the foreground
//	<!-- readme-test: run -->       typed into "terminal 2"; warden is started again first
//	                                if a stopped block stopped it (its start command, again)
//	<!-- readme-test: stopped -->   typed into terminal 2 after stopping warden as Ctrl-C does
//	                                (SIGINT to terminal 1's process group): it exits 0
//	<!-- readme-test: restart -->   one command, typed into terminal 1 after stopping warden as
//	                                Ctrl-C does: it starts warden again with other flags, and
//	                                later restarts use it
//	<!-- readme-test: skip: why --> not run; the reason is logged
//
// A fence without a language is refused: shell commands are ```sh (with a
// marker), anything else ```text or ```json.
//
// Each terminal is one bash reading commands from a pipe with history
// expansion on, as an interactive shell has it (a "!" in double quotes
// fails as it would for a person). Substitutions, and only these: HOME is
// a temporary directory (~/warden-demo is made there, the clone is left
// alone); the README's `go build` line copies buildWarden's binary instead
// (WARDEN_TEST_BIN works); warden listens on free loopback ports
// (WARDEN_MQTT_ADDR, WARDEN_HTTP_ADDR and, in the start command, port 0
// for ":8883") so the test never clashes with another, and 1883, 8883 and
// 8080 in later commands are replaced by the ports it logged, 6379 by a
// redis-server the test starts, and the NATS walkthrough's ports (readmeNATSPorts)
// by free ones; PW='...' gets the password from the log line, as the
// README tells the user to copy it.
//
// Checks: every command exits 0, and its output has no shell error ("bash: ...") and no JSON error unless
// expected; a command printing %{http_code} prints the status its comment
// names; a variable a command sets with $(...) is neither empty nor
// "null"; the background subscriber (a mosquitto_sub ending in &) prints
// the messages the comments promise and never the refused ones. The
// subscriber is probed with a message of the test's own until it has
// subscribed, so no publish races its SUBSCRIBE.
func TestREADME(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds warden and runs README.md's examples")
	}
	for _, tool := range []string{"bash", "curl", "jq", "openssl", "base64", "mosquitto_pub", "mosquitto_sub", "nats-server"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: README.md's examples need it (make deps installs it)", tool)
		}
	}
	blocks := readmeBlocks(t, filepath.Join("..", "..", "README.md"))
	if t.Failed() {
		return
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	// The examples' files must land in ~/warden-demo, not in the clone.
	leftovers := []string{"data", "cam-0001.key", "cam-0001.csr", "cam-0001.crt", "backup.gz", "backup-keys.gz"}
	leftovers = slices.DeleteFunc(leftovers, func(name string) bool {
		_, err := os.Stat(filepath.Join(repo, name))
		return err == nil // there before the test: not the test's to judge
	})

	r := &readmeRun{t: t, bin: buildWarden(t), repo: repo, home: t.TempDir(), out: t.TempDir(),
		ports: map[string]string{}, wants: readmeWants()}
	for _, b := range blocks {
		for _, c := range b.cmds {
			if strings.Contains(c.text, "6379") && r.ports["6379"] == "" {
				red := storetest.StartRedis(t)
				r.ports["6379"] = red.Addr[strings.LastIndex(red.Addr, ":")+1:]
			}
		}
	}
	for _, b := range blocks {
		if !r.block(b) {
			return
		}
	}
	if r.term1 == nil {
		t.Fatal("README.md has no block marked <!-- readme-test: start -->")
	}
	r.stopWarden()
	if !r.pwSet {
		t.Error("README.md: no command sets PW='...' to the password from the log line")
	}
	for key, w := range r.wants {
		if w.hits != 1 {
			t.Errorf("README.md: %d commands contain %q, want 1: update readmeWants with the README", w.hits, key)
		}
	}
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(repo, name)); err == nil {
			t.Errorf("the README's examples left %s in the clone", name)
		}
	}
}

// readmeWant is what the README's comments promise for one command,
// beyond exit status 0 and no error in its output.
type readmeWant struct {
	out       []string // the command's output contains each
	errorOK   bool     // its output may hold a JSON error
	delivered string   // the background subscriber prints this line
	never     string   // the background subscriber never prints this line
	mode      string   // this file in ~/warden-demo has mode 0600
	hits      int
}

// readmeWants maps a piece of a README command (its comment, mostly: the
// promise) to what the command must show.
func readmeWants() map[string]*readmeWant {
	return map[string]*readmeWant{
		"# the subscriber prints: plant1/line1/temp 21.5":                            {delivered: "plant1/line1/temp 21.5"},
		`"username":"device-1","password":"device-1-secret",`:                        {out: []string{`"username":"device-1"`, `"mqttPublishPrefix":"plant1/"`}},
		"# plant1/line1/temp: accepted, the subscriber prints it":                    {delivered: "plant1/line1/temp 21"},
		`# "Not authorized", never delivered`:                                        {out: []string{"Not authorized"}, never: "plant1/line2/temp 22"},
		`# now "Not authorized"`:                                                     {out: []string{"Not authorized"}, never: "plant1/line1/temp 23"},
		`# back again: {"id":...}`:                                                   {out: []string{`"id":`, `"resource":"plant1/line1/#"`}},
		"/api/.well-known/jwks.json":                                                 {out: []string{`"keys":[{`, `"kty":"OKP"`}},
		`# {"valid":true,"username":"device-1",...}`:                                 {out: []string{`"valid":true`, `"username":"device-1"`}},
		`# {"valid":false,"reason":"revoked"}`:                                       {out: []string{`"valid":false`, `"reason":"revoked"`}},
		`# the service acts as the token's user`:                                     {out: []string{`"username":"admin"`}},
		`# your application tokens (ids, never the tokens)`:                          {out: []string{`"description":"billing service"`}},
		`# the exchanged token went with it: 401`:                                    {out: []string{`"code":401`}, errorOK: true},
		"curl -s localhost:8080/api/client-registry -H":                              {out: []string{`"username":"cam-0001"`, `"granted":false`}},
		"# no password: the subscriber prints plant1/line1/frames frame":             {delivered: "plant1/line1/frames frame"},
		"curl -s -X POST localhost:8080/api/maintenance/db/backup":                   {out: []string{"database backup", "started"}},
		"/api/maintenance/db/restore -H":                                             {out: []string{"database restore", "started"}},
		`# "restore":{...,"succeeded":true,"statusMessage":"restore finished: ..."}`: {out: []string{`"succeeded":true`, "restore finished"}},
		"./warden backup --out backup.gz ":                                           {out: []string{"written to backup.gz"}, mode: "backup.gz"},
		"./warden backup --out backup-keys.gz --include-keys":                        {out: []string{"written to backup-keys.gz"}, mode: "backup-keys.gz"},
		`./warden restore backup.gz                      # "-" reads stdin`:          {out: []string{"restored into the embedded store"}},
		"WARDEN_REDIS_URL=redis://localhost:6379/0 ./warden restore backup.gz":       {out: []string{"restored into the Redis store"}},
		"curl -s localhost:8080/readyz":                                              {out: []string{`"status":"ok"`}},
		"curl -s localhost:8080/metrics | grep '^warden_mqtt'":                       {out: []string{"warden_mqtt_connects_accepted_total"}},
		"./warden nats-config --nats-password 'nats-Secret-1' > warden.conf":         {out: []string{"NATS configuration for the callout issuer"}},
		"127.0.0.1:8222/healthz":                                                     {out: []string{`{"status":"ok"}`}},
		"127.0.0.1:8223/healthz":                                                     {out: []string{`{"status":"ok"}`}},
		"127.0.0.1:8224/healthz":                                                     {out: []string{`{"status":"ok"}`}},
		`"username":"sensor-1","password":"sensor-1-Secret",`:                        {out: []string{`"username":"sensor-1"`, `"resource":"plant1/#"`}},
		"# node 3 prints plant1/line1/temp 21.5":                                     {out: []string{"plant1/line1/temp 21.5"}},
		`"username":"emqx","password":"emqx-webhook-Pass-1",`:                        {out: []string{`"username":"emqx"`, `"resource":"/api/broker/emqx/+"`}},
		`"action":"publish"}'   # {"result":"allow"}`:                                {out: []string{`{"result":"allow"}`}},
		`"ldapGroups":["cn=staff,ou=groups,dc=example,dc=org"]}'`:                    {out: []string{`"ldapGroups":["cn=staff,ou=groups,dc=example,dc=org"]`}},
		`{identityProvider, ldapRoles: [.ldapRoles[].name]}'`:                        {out: []string{`{"identityProvider":"ldap","ldapRoles":["plant-staff"]}`}},
	}
}

// readmeBlock is a ```sh block of README.md and its marker.
type readmeBlock struct {
	line   int    // of the opening fence
	kind   string // start, run, stopped or skip
	reason string // of a skip
	cmds   []readmeCmd
}

// readmeCmd is one command as a person would type or paste it.
type readmeCmd struct {
	line    int
	text    string // with continuation lines and the trailing comment
	code    string // text without the trailing comment
	comment string
}

var readmeMarker = regexp.MustCompile(`^<!-- readme-test: (start|run|stopped|restart|skip: (.+)) -->$`)

// readmeBlocks returns README.md's ```sh blocks, failing the test on a
// block without a language or a shell block without a marker.
func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var blocks []readmeBlock
	marker, markerLine := []string(nil), -1
	for i := 0; i < len(lines); i++ {
		if m := readmeMarker.FindStringSubmatch(lines[i]); m != nil {
			marker, markerLine = m, i
			continue
		}
		if strings.HasPrefix(lines[i], "<!-- readme-test") {
			t.Errorf("README.md:%d: unknown marker %q", i+1, lines[i])
		}
		lang, ok := strings.CutPrefix(lines[i], "```")
		if !ok {
			if marker != nil && strings.TrimSpace(lines[i]) != "" {
				t.Errorf("README.md:%d: marker not followed by a code block", markerLine+1)
				marker = nil
			}
			continue
		}
		end := i + 1
		for end < len(lines) && !strings.HasPrefix(lines[end], "```") {
			end++
		}
		switch lang {
		case "":
			t.Errorf("README.md:%d: code block without a language: shell commands are ```sh (with a readme-test marker), anything else ```text or ```json", i+1)
		case "sh":
			if marker == nil {
				t.Errorf("README.md:%d: ```sh block without a <!-- readme-test: start|run|stopped|skip: why --> marker just above it", i+1)
				break
			}
			kind := marker[1]
			if marker[2] != "" {
				kind = "skip"
			}
			cmds, err := splitCommands(i+2, lines[i+1:end])
			if err != nil {
				t.Errorf("README.md:%d: %v", i+1, err)
			}
			blocks = append(blocks, readmeBlock{line: i + 1, kind: kind, reason: marker[2], cmds: cmds})
		default:
			if marker != nil {
				t.Errorf("README.md:%d: a readme-test marker on a ```%s block: only ```sh blocks run", i+1, lang)
			}
		}
		marker = nil
		i = end
	}
	return blocks
}

// splitCommands splits a block into commands as bash reads them: a
// newline ends a command unless it is escaped or inside quotes; a # at the
// start of a word begins a comment. Comment-only lines are dropped. It
// knows quotes and backslashes, not quotes nested in $(...) inside double
// quotes, which the README does not use.
func splitCommands(firstLine int, lines []string) ([]readmeCmd, error) {
	var cmds []readmeCmd
	var cur, comment strings.Builder
	start, line := firstLine, firstLine
	quote := byte(0)
	flush := func() {
		text := strings.TrimSpace(cur.String())
		code := strings.TrimSpace(strings.TrimSuffix(text, comment.String()))
		if code != "" {
			cmds = append(cmds, readmeCmd{line: start, text: text, code: code, comment: comment.String()})
		}
		cur.Reset()
		comment.Reset()
	}
	src := strings.Join(lines, "\n") + "\n"
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\n' && quote == 0:
			flush()
			line++
			start = line
			continue
		case c == '\n':
			line++
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case c == '\\' && i+1 < len(src):
			cur.WriteByte(c)
			i++
			c = src[i]
			if c == '\n' {
				line++
			}
		case quote == '"':
			if c == '"' {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (cur.Len() == 0 || strings.ContainsRune(" \t", rune(cur.String()[cur.Len()-1]))):
			end := strings.IndexByte(src[i:], '\n')
			comment.WriteString(src[i : i+end])
			cur.WriteString(src[i : i+end])
			i += end - 1
			continue
		}
		cur.WriteByte(c)
	}
	if quote != 0 {
		return cmds, fmt.Errorf("unbalanced %c quote", quote)
	}
	return cmds, nil
}

// readmeRun is the state of one walk through the README.
type readmeRun struct {
	t                    *testing.T
	bin, repo, home, out string
	term1, term2         *readmeShell
	startCmd             string // the command that starts warden, substituted
	wardenCmd            int    // terminal 1's number of that command while warden runs; 0 when stopped
	pw                   string
	pwSet                bool              // a command set PW='...', which got pw
	ports                map[string]string // README port -> the port in use
	sub                  string            // the background subscriber's output file
	never                []string
	wants                map[string]*readmeWant
}

var (
	readmePorts  = regexp.MustCompile(`\b(1883|8883|8080|6379|` + readmeNATSPorts + `)\b`)
	readmeListen = regexp.MustCompile(`:(1883|8883|8080)\b`)
	readmePW     = regexp.MustCompile(`\bPW='[^']*'`)
	readmeAssign = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=\$\(`)
	readmeStatus = regexp.MustCompile(`\b[1-5][0-9][0-9]\b`)
	readmeFilter = regexp.MustCompile(`-t '([^']+)'`)
)

const readmeBuild = "go build -o ~/warden-demo/warden ./cmd/warden"

// readmeNATSPorts are the ports of the README's NATS cluster (client,
// monitoring, MQTT, routes) and of its LDAP directory (ldap://, ldaps://),
// each replaced by a free port of the test's.
const readmeNATSPorts = "4222|4223|4224|8222|8223|8224|1884|1885|1886|6222|6223|6224|3389|6636"

// block runs one README block; false stops the walk.
func (r *readmeRun) block(b readmeBlock) bool {
	t := r.t
	switch b.kind {
	case "skip":
		t.Logf("README.md:%d not run: %s", b.line, b.reason)
		return true
	case "start":
		return r.start(b)
	case "restart":
		return r.restart(b)
	}
	if r.term1 == nil {
		t.Errorf("README.md:%d: a %s block before the start block", b.line, b.kind)
		return false
	}
	if b.kind == "stopped" {
		r.stopWarden()
	} else if r.wardenCmd == 0 {
		t.Logf("starting warden again in terminal 1: %s", r.startCmd)
		r.launch()
	}
	if r.term2 == nil {
		r.term2 = r.shell("terminal2", r.home, nil)
	}
	// A failed command does not stop the walk: the user would go on and
	// see the rest, and so does the report.
	for _, c := range b.cmds {
		r.command(c)
	}
	return true
}

// start runs the start block in terminal 1: every command but the last
// must succeed; the last starts warden, which must become ready.
func (r *readmeRun) start(b readmeBlock) bool {
	t := r.t
	if r.term1 != nil {
		t.Errorf("README.md:%d: a second start block", b.line)
		return false
	}
	if len(b.cmds) == 0 {
		t.Errorf("README.md:%d: empty start block", b.line)
		return false
	}
	r.term1 = r.shell("terminal1", r.repo, []string{"WARDEN_MQTT_ADDR=127.0.0.1:0", "WARDEN_HTTP_ADDR=127.0.0.1:0"})
	built := false
	for _, c := range b.cmds[:len(b.cmds)-1] {
		text := c.text
		if strings.Contains(text, readmeBuild) {
			built = true
			text = strings.ReplaceAll(text, readmeBuild, "mkdir -p ~/warden-demo && cp "+shellQuote(r.bin)+" ~/warden-demo/warden")
		}
		t.Logf("README.md:%d terminal 1 $ %s", c.line, c.text)
		if status, out := r.term1.run(text); status != 0 {
			t.Errorf("README.md:%d: %q exited %d:\n%s", c.line, c.text, status, out)
			return false
		}
	}
	if !built {
		t.Errorf("README.md:%d: the start block no longer builds warden with %q", b.line, readmeBuild)
		return false
	}
	last := b.cmds[len(b.cmds)-1]
	t.Logf("README.md:%d terminal 1 $ %s", last.line, last.text)
	r.startCmd = readmeListen.ReplaceAllString(last.text, "127.0.0.1:0")
	out := r.launch()
	// The password line may follow the ready line (listeners open first).
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out, generatedPasswordMsg) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		out = r.term1.output(r.wardenCmd)
	}
	pws := generatedPasswordLines(t, out)
	if len(pws) != 1 {
		t.Errorf("the first start logged %d generated passwords, want 1:\n%s", len(pws), out)
		return false
	}
	if strings.Contains(pws[0], "'") {
		t.Errorf("the generated password %q holds a single quote: PW='...' cannot take it", pws[0])
		return false
	}
	r.pw = pws[0]
	return true
}

// restart stops warden as Ctrl-C does and starts it again in terminal 1
// with the block's one command, which later restarts use too.
func (r *readmeRun) restart(b readmeBlock) bool {
	t := r.t
	if r.term1 == nil || len(b.cmds) != 1 {
		t.Errorf("README.md:%d: a restart block holds one command, after the start block", b.line)
		return false
	}
	r.stopWarden()
	c := b.cmds[0]
	t.Logf("README.md:%d terminal 1 $ %s", c.line, c.text)
	r.startCmd = r.substitute(c, readmeListen.ReplaceAllString(c.text, "127.0.0.1:0"))
	r.launch()
	return true
}

// launch types the start command into terminal 1 and waits until warden
// is ready; it learns the ports warden listens on.
func (r *readmeRun) launch() string {
	t := r.t
	t.Helper()
	n := r.term1.send(r.startCmd)
	r.wardenCmd = n
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := r.term1.output(n)
		if strings.Contains(out, "warden ready") {
			r.ports["1883"] = listenPort(t, out, "mqtt")
			r.ports["8883"] = listenPort(t, out, "mqtts")
			r.ports["8080"] = listenPort(t, out, "http")
			return out
		}
		if status, done := r.term1.finished(n); done {
			t.Fatalf("warden exited %d before it was ready:\n%s", status, out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("warden not ready within 15 s:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func listenPort(t *testing.T, out, listener string) string {
	t.Helper()
	addr := listenAddr(t, out, listener)
	return addr[strings.LastIndex(addr, ":")+1:]
}

// stopWarden stops a running warden as Ctrl-C in its terminal does: a
// clean stop exits 0. The subscriber must not have printed a refused
// message by then.
func (r *readmeRun) stopWarden() {
	t := r.t
	t.Helper()
	if r.wardenCmd == 0 {
		return
	}
	r.checkNever()
	if err := syscall.Kill(-r.term1.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatalf("Ctrl-C: %v", err)
	}
	status, out := r.term1.wait(r.wardenCmd, 20*time.Second)
	if status != 0 {
		t.Errorf("warden exited %d after Ctrl-C, want 0:\n%s", status, out)
	}
	r.wardenCmd = 0
}

func (r *readmeRun) checkNever() {
	if r.sub == "" {
		return
	}
	lines := readLines(r.sub)
	for _, s := range r.never {
		if slices.Contains(lines, s) {
			r.t.Errorf("the subscriber printed %q, which the README says is refused", s)
		}
	}
	r.never = nil
}

// command types one README command into terminal 2 and checks it.
func (r *readmeRun) command(c readmeCmd) {
	t := r.t
	t.Helper()
	text := r.substitute(c, c.text)
	if readmePW.MatchString(text) {
		text = readmePW.ReplaceAllLiteralString(text, "PW='"+r.pw+"'")
		r.pwSet = true
	}
	t.Logf("README.md:%d $ %s", c.line, c.text)
	n := r.term2.send(text)
	if strings.HasSuffix(c.code, "&") {
		r.probeSubscriber(c, n)
		return
	}
	status, out := r.term2.wait(n, 30*time.Second)

	var want readmeWant
	for key, w := range r.wants {
		if strings.Contains(c.text, key) {
			w.hits++
			want = *w
		}
	}
	fail := func(format string, args ...any) {
		t.Errorf("README.md:%d: %s\n$ %s\n%s", c.line, fmt.Sprintf(format, args...), c.text, out)
	}
	if status != 0 {
		fail("exit status %d", status)
	}
	if slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool { return strings.HasPrefix(l, "bash: ") }) {
		fail("the shell refused it")
	}
	// mosquitto_pub exits 0 when a QoS 1 publish is refused.
	if strings.Contains(out, "Not authorized") && !slices.Contains(want.out, "Not authorized") {
		fail("refused, and the README does not say so")
	}
	errorOK := want.errorOK
	if strings.Contains(c.code, "%{http_code}") {
		code := readmeStatus.FindString(c.comment)
		if code == "" {
			fail("prints its HTTP status, but its comment does not say which")
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if got := lines[len(lines)-1]; got != code {
			fail("HTTP status %s, the comment says %s", got, code)
		}
		errorOK = errorOK || code >= "400"
	}
	if strings.Contains(out, `"error":`) && !errorOK {
		fail("answered an error")
	}
	for _, s := range want.out {
		if !strings.Contains(out, s) {
			fail("output lacks %q", s)
		}
	}
	if m := readmeAssign.FindStringSubmatch(c.code); m != nil {
		_, v := r.term2.run(`printf '%s' "$` + m[1] + `"`)
		if v == "" || v == "null" {
			fail("left $%s %q", m[1], v)
		}
	}
	if want.mode != "" {
		fi, err := os.Stat(filepath.Join(r.home, "warden-demo", want.mode))
		switch {
		case err != nil:
			fail("%v", err)
		case fi.Mode().Perm() != 0o600:
			fail("%s has mode %v, want 0600", want.mode, fi.Mode().Perm())
		}
	}
	if want.delivered != "" {
		r.waitDelivered(c, want.delivered)
	}
	if want.never != "" {
		r.never = append(r.never, want.never)
	}
}

// substitute replaces the README's ports in text, a form of command c,
// with the ones in use.
func (r *readmeRun) substitute(c readmeCmd, text string) string {
	t := r.t
	t.Helper()
	return readmePorts.ReplaceAllStringFunc(text, func(p string) string {
		if r.ports[p] == "" && strings.Contains("|"+readmeNATSPorts+"|", "|"+p+"|") {
			r.ports[p] = r.freeLowPort()
		}
		if r.ports[p] == "" {
			t.Fatalf("README.md:%d: no port stands in for %s", c.line, p)
		}
		return r.ports[p]
	})
}

// freeLowPort returns a loopback port that nothing listens on, below
// Linux's ephemeral range (32768-60999): a port that ":0" handed out and
// was closed may be taken by an outgoing connection before nats-server
// binds it, which on a busy machine (tens of thousands of sockets in
// TIME_WAIT) happens.
func (r *readmeRun) freeLowPort() string {
	t := r.t
	t.Helper()
	for range 1000 {
		port := strconv.Itoa(20000 + rand.IntN(12000))
		if slices.Contains(slices.Collect(maps.Values(r.ports)), port) {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

// probeSubscriber waits until the background subscriber command n has
// subscribed, publishing probes of the test's own on its filter.
func (r *readmeRun) probeSubscriber(c readmeCmd, n int) {
	t := r.t
	t.Helper()
	m := readmeFilter.FindStringSubmatch(c.code)
	if !strings.Contains(c.code, "mosquitto_sub") || !strings.Contains(c.code, "-u admin") || m == nil || !strings.HasSuffix(m[1], "#") {
		t.Fatalf("README.md:%d: a background command the test does not know (it knows an admin's mosquitto_sub -t 'prefix/#'): %s", c.line, c.text)
	}
	if r.sub != "" {
		t.Fatalf("README.md:%d: a second background subscriber", c.line)
	}
	r.sub = r.term2.outFile(n)
	probe := strings.TrimSuffix(m[1], "#") + "readme-test-probe"
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		if slices.ContainsFunc(readLines(r.sub), func(l string) bool { return strings.HasPrefix(l, probe+" ") }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("README.md:%d: the subscriber received no probe within 15 s:\n%s", c.line, r.term2.output(n))
		}
		out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", r.ports["1883"], "-u", "admin", "-P", r.pw,
			"-t", probe, "-m", strconv.Itoa(i)).CombinedOutput()
		if err != nil {
			t.Fatalf("probe: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *readmeRun) waitDelivered(c readmeCmd, line string) {
	t := r.t
	t.Helper()
	if r.sub == "" {
		t.Errorf("README.md:%d: promises a delivery, but no subscriber runs", c.line)
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(readLines(r.sub), line) {
		if time.Now().After(deadline) {
			t.Errorf("README.md:%d: the subscriber did not print %q within 10 s; it printed:\n%s", c.line, line, strings.Join(readLines(r.sub), "\n"))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readLines(path string) []string {
	data, _ := os.ReadFile(path)
	return strings.Split(string(data), "\n")
}

// shell starts a bash that reads commands from a pipe, in its own process
// group (so that Ctrl-C reaches it and its children only), with HOME set
// to the test's home and no WARDEN_* variable of the caller.
func (r *readmeRun) shell(name, dir string, env []string) *readmeShell {
	t := r.t
	t.Helper()
	cmd := exec.Command("bash", "--noprofile", "--norc", "-s")
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		// The caller's configuration of warden, curl and the mosquitto
		// clients stays out: a newcomer has none.
		if !strings.HasPrefix(key, "WARDEN_") && key != "HOME" && key != "XDG_CONFIG_HOME" && key != "CURL_HOME" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, "HOME="+r.home), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s := &readmeShell{t: t, name: name, dir: r.out, cmd: cmd, stderr: &logBuffer{}, status: map[int]int{}, news: make(chan struct{}, 1)}
	cmd.Stderr = s.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdin = stdin
	// Commands report their exit status on fd 3, which nothing else uses.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bash: %v", err)
	}
	pw.Close()
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var n, status int
			if _, err := fmt.Sscanf(sc.Text(), "readme-test-done %d %d", &n, &status); err == nil {
				s.mu.Lock()
				s.status[n] = status
				s.mu.Unlock()
				select {
				case s.news <- struct{}{}:
				default:
				}
			}
		}
		pr.Close()
	}()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.exited = exited
	t.Cleanup(func() {
		// The shell, warden and the background subscriber share the group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = stdin.Close()
		<-exited
	})
	// An interactive bash expands history ("!"): so does this one.
	if _, err := io.WriteString(stdin, "set -o history -o histexpand\n"); err != nil {
		t.Fatal(err)
	}
	return s
}

// readmeShell is one terminal: a bash fed one command at a time.
type readmeShell struct {
	t      *testing.T
	name   string
	dir    string // where command outputs are kept
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *logBuffer
	exited chan struct{}
	n      int
	mu     sync.Mutex
	status map[int]int
	news   chan struct{}
}

func (s *readmeShell) outFile(n int) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%03d.out", s.name, n))
}

// send types text into the shell, its output going to its own file, and
// returns its number. The status is read from $? after the text: a line
// the shell refused to run (history expansion) shows in the output.
func (s *readmeShell) send(text string) int {
	s.t.Helper()
	s.n++
	script := fmt.Sprintf("exec >%s 2>&1\n%s\necho \"readme-test-done %d $?\" >&3\n", shellQuote(s.outFile(s.n)), text, s.n)
	if _, err := io.WriteString(s.stdin, script); err != nil {
		s.t.Fatalf("%s: write: %v; shell stderr:\n%s", s.name, err, s.stderr)
	}
	return s.n
}

func (s *readmeShell) output(n int) string {
	data, _ := os.ReadFile(s.outFile(n))
	return string(data)
}

func (s *readmeShell) finished(n int) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	status, ok := s.status[n]
	return status, ok
}

// wait waits for command n to finish and returns its status and output.
func (s *readmeShell) wait(n int, d time.Duration) (int, string) {
	s.t.Helper()
	timeout := time.After(d)
	for {
		if status, ok := s.finished(n); ok {
			return status, s.output(n)
		}
		select {
		case <-s.news:
		case <-s.exited:
			if status, ok := s.finished(n); ok {
				return status, s.output(n)
			}
			s.t.Fatalf("%s exited during command %d; output:\n%s\nshell stderr:\n%s", s.name, n, s.output(n), s.stderr)
		case <-timeout:
			s.t.Fatalf("%s: command %d did not finish within %v; output:\n%s", s.name, n, d, s.output(n))
		}
	}
}

func (s *readmeShell) run(text string) (int, string) {
	s.t.Helper()
	return s.wait(s.send(text), 30*time.Second)
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
