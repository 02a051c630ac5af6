#!/usr/bin/env bash
# bench-compare.sh: warden measured side by side with Mosquitto 2 and its
# dynamic security plugin, and with warden's own auth switched off.
#
# Starts four brokers on free loopback ports, each from a fresh state:
#   warden         embedded store; a shared role "bench" with readWrite on
#                  bench/# and BENCH_USERS users holding it, created through
#                  the admin API (POST /api/login, /api/roles, /api/users/batch)
#   warden-noauth  the same binary with --insecure-no-auth (Mochi's allow-all
#                  hook): what the broker costs without warden's auth layer
#   mosquitto      Mosquitto 2 with mosquitto_dynamic_security.so at its
#                  defaults; the same users and an equivalent role (publish,
#                  receive and subscribe allowed on bench/#), created with
#                  mosquitto_ctrl and one batched dynsec request
#   mosquitto-q0   the same with max_queued_messages 0 (no per-client queue
#                  limit: at its default of 1000 Mosquitto drops acknowledged
#                  QoS 1 messages to slow subscribers)
# then runs the same warden-bench cases against each in alternation, for
# BENCH_ROUNDS rounds (the order of the brokers rotates each round; each
# round starts with the four restarted, state kept, so no round inherits
# the memory of the one before), and
# prints each figure's median per broker with the ratios warden/mosquitto,
# warden/mosquitto-q0 and warden/warden-noauth. Raw JSON, tables, broker logs
# and the summary go to the results directory.
#
# Settings (environment):
#   BENCH_QUICK=1      tiny counts and 1-second phases: proves the script
#                      works end to end in about four minutes; not for figures
#   BENCH_ROUNDS=3     rounds (at least 3 for figures worth reading)
#   BENCH_USERS=200    users created on each broker (at least 60). warden
#                      hashes each password with argon2id (about 30 ms per
#                      core), so 200 take a few seconds
#   BENCH_IDLE_CLIENTS=10000
#                      clients the idle case holds connected (memory per
#                      idle client); needs that many open files in
#                      warden-bench and in each broker: the script raises
#                      the soft open-file limit to the hard one, and takes
#                      fewer clients (saying so) if it is still too low
#   BENCH_RETAINED=100000
#                      retained messages the retained case stores
#   BENCH_RESULTS=DIR  results directory (default: a new one under /tmp)
#
# Both brokers are configured as shipped except where a case needs
# otherwise: warden runs with its failed-CONNECT lockout off
# (--auth-max-failures-user/-user-total/-ip -1) because every bench client comes from
# 127.0.0.1 and the denied case would otherwise lock the legitimate clients
# out (Mosquitto has no such lockout; with it on, warden would refuse the
# flood without hashing, which is cheaper than what is measured here).
#
# Connection limits: warden's --mqtt-max-connections defaults to 90% of its
# open-file limit (Go raises the soft limit to the hard one at start) and
# Mosquitto's max_connections to -1 (none; its own open-file limit, which
# it inherits from this script, is the bound), so both take the idle
# case's clients as configured; machine.txt records the limit.
#
# The full run takes about 11 minutes on a 2-core machine (about 200 s per
# round, 60 of them waiting for memory to settle, plus the build and the
# setup; 290 s per round on a loaded one) and prints its total time; run it on
# an otherwise idle machine. Needs go, curl, and Mosquitto 2 (installed with
# apt-get when missing).
set -euo pipefail

START=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=${BENCH_QUICK:-0}
ROUNDS=${BENCH_ROUNDS:-3}
USERS=${BENCH_USERS:-200}
IDLE_CLIENTS=${BENCH_IDLE_CLIENTS:-10000}
RETAINED=${BENCH_RETAINED:-100000}
if [ "$QUICK" = 1 ]; then
	USERS=${BENCH_USERS:-60}
	IDLE_CLIENTS=${BENCH_IDLE_CLIENTS:-200}
	RETAINED=${BENCH_RETAINED:-2000}
fi
RESULTS=${BENCH_RESULTS:-${TMPDIR:-/tmp}/warden-bench-$(date -u +%Y%m%dT%H%M%SZ)}
if [ "$USERS" -lt 60 ]; then
	echo "bench-compare: BENCH_USERS must be at least 60 (fanout uses 51 distinct users, denied 30)" >&2
	exit 2
fi

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# ---- processes: every one we start is recorded and stopped on exit ----
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")
PIDS=()
cleanup() {
	local code=$?
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -d "$RESULTS" ]; then
		mkdir -p "$RESULTS/logs"
		cp "$WORK"/*.log "$RESULTS/logs/" 2>/dev/null || true
	fi
	rm -rf "$WORK"
	exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a loopback TCP port nobody listens on, below the
# ephemeral range: a port that some client connection uses as its local
# port cannot be bound either, and that is invisible to a connect test.
free_port() {
	local p low
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$low" -gt 11000 ] || low=61000
	for _ in $(seq 100); do
		p=$((10000 + RANDOM % (low - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# wait_port waits until something listens on 127.0.0.1:$1; it fails when
# process $2 exits first or after 10 s.
wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

randpw() { printf 'bench-%s' "$(od -An -tx1 -N9 /dev/urandom | tr -d ' \n')"; }

# ---- prerequisites ----
command -v go >/dev/null || die "go not found"
command -v curl >/dev/null || die "curl not found"
if ! command -v mosquitto >/dev/null || ! command -v mosquitto_ctrl >/dev/null || ! command -v mosquitto_pub >/dev/null; then
	say "installing mosquitto and mosquitto-clients (apt-get)"
	sudo=()
	[ "$(id -u)" -ne 0 ] && sudo=(sudo)
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null
fi
DYNSEC=$(dpkg -L mosquitto 2>/dev/null | grep '/mosquitto_dynamic_security\.so$' | head -1 || true)
[ -n "$DYNSEC" ] || DYNSEC=$(ls /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so 2>/dev/null | head -1 || true)
[ -n "$DYNSEC" ] || die "mosquitto_dynamic_security.so not found (Debian's mosquitto package ships it)"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The idle case holds IDLE_CLIENTS sockets in warden-bench and as many in
# the broker (each process has its own limit, this one): keep 200 spare.
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$IDLE_CLIENTS" -gt $((NOFILE - 200)) ]; then
	say "open-file limit $NOFILE (hard $(ulimit -Hn)) is too low for $IDLE_CLIENTS idle clients: the idle case takes $((NOFILE - 200))"
	IDLE_CLIENTS=$((NOFILE - 200))
fi

mkdir -p "$RESULTS/raw"
say "results: $RESULTS"
{
	echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cores:     $(nproc)"
	echo "cpu:       $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "memory:    $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel:    $(uname -r)"
	echo "go:        $(go version)"
	echo "mosquitto: $(mosquitto -h 2>&1 | head -1)"
	echo "warden:    $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
	echo "settings:  BENCH_QUICK=$QUICK BENCH_ROUNDS=$ROUNDS BENCH_USERS=$USERS BENCH_IDLE_CLIENTS=$IDLE_CLIENTS BENCH_RETAINED=$RETAINED"
	echo "nofile:    $NOFILE (soft, raised; hard $(ulimit -Hn)): warden's MQTT connection cap is 90% of it, Mosquitto's max_connections -1"
	echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; should be near 0 before a run)"
} | tee "$RESULTS/machine.txt" >&2

say "building warden and warden-bench"
(cd "$ROOT" && go build -o "$WORK/warden" ./cmd/warden && go build -o "$WORK/warden-bench" ./cmd/warden-bench)
BENCH=$WORK/warden-bench
export WARDEN_BENCH_PASSWORD
WARDEN_BENCH_PASSWORD=$(randpw)

declare -A ADDR BPID

# ---- warden ----
# start_warden NAME EXTRA-FLAGS...: starts warden on port 0 and reads the
# bound addresses from its log ($WORK/NAME$RUN_TAG.log: one per start).
RUN_TAG=
start_warden() {
	local name=$1
	shift
	local log=$WORK/$name$RUN_TAG.log
	"$WORK/warden" --mqtt-addr 127.0.0.1:0 --data-dir "$WORK/$name-data" "$@" >"$log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	for _ in $(seq 300); do
		grep -q 'msg="warden ready"' "$log" && break
		kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$name exited at start"; }
		sleep 0.1
	done
	grep -q 'msg="warden ready"' "$log" || die "$name not ready after 30 s"
	ADDR[$name]=$(grep -o 'msg=listening listener=mqtt addr=[^ ]*' "$log" | head -1 | sed 's/.*addr=//')
	BPID[$name]=$pid
}

api() { # METHOD PATH [BODY]: prints the response body, fails on an HTTP error
	curl -sS --fail-with-body -X "$1" -H 'Content-Type: application/json' ${TOKEN:+-H "Authorization: Bearer $TOKEN"} \
		${3:+--data-binary "$3"} "http://$HTTP$2"
}

ADMIN_PW=$(randpw)
WARDEN_ARGS=(--http-addr 127.0.0.1:0 --admin-password "$ADMIN_PW" --auth-max-failures-user -1 --auth-max-failures-user-total -1 --auth-max-failures-ip -1)
NOAUTH_ARGS=(--http-addr "" --insecure-no-auth)
say "starting warden (auth on) and creating $USERS users through the admin API"
start_warden warden "${WARDEN_ARGS[@]}"
HTTP=$(grep -o 'msg=listening listener=http addr=[^ ]*' "$WORK/warden.log" | head -1 | sed 's/.*addr=//')
TOKEN=
TOKEN=$(api POST /api/login "{\"username\":\"admin\",\"password\":\"$ADMIN_PW\"}" | grep -o '"token":"[^"]*"' | head -1 | cut -d'"' -f4)
[ -n "$TOKEN" ] || die "admin login failed"
ROLE_ID=$(api POST /api/roles '{"name":"bench","isShared":true,"permissions":[{"resource":"bench/#","operation":"readWrite","context":"mqtt"}]}' |
	grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)
[ -n "$ROLE_ID" ] || die "creating the bench role failed"
# Batches of 50, two at a time: each password is hashed with argon2id on
# one core.
batch_users() { # FIRST LAST
	local body="[" i
	for i in $(seq "$1" "$2"); do
		[ "$i" -gt "$1" ] && body+=","
		body+="{\"username\":\"bench-$i\",\"password\":\"$WARDEN_BENCH_PASSWORD\",\"roles\":[\"$ROLE_ID\"]}"
	done
	api POST /api/users/batch "$body]" >/dev/null
}
jobs_pids=()
for ((first = 0; first < USERS; first += 50)); do
	batch_users "$first" "$((first + 49 < USERS - 1 ? first + 49 : USERS - 1))" &
	jobs_pids+=($!)
	if [ "${#jobs_pids[@]}" -ge 2 ]; then
		wait "${jobs_pids[0]}" || die "creating warden users failed"
		jobs_pids=("${jobs_pids[@]:1}")
	fi
done
for p in "${jobs_pids[@]}"; do wait "$p" || die "creating warden users failed"; done
unset TOKEN

say "starting warden --insecure-no-auth"
start_warden warden-noauth "${NOAUTH_ARGS[@]}"

# ---- Mosquitto with dynamic security ----
MOSQ_ADMIN_PW=$(randpw)
# start_mosquitto NAME CONF-LINES: the dynsec file must exist in $WORK/NAME.
start_mosquitto() {
	local name=$1 extra=$2 port
	port=$(free_port)
	cat >"$WORK/$name$RUN_TAG.conf" <<-EOF
		listener $port 127.0.0.1
		allow_anonymous false
		plugin $DYNSEC
		plugin_opt_config_file $WORK/$name/dynamic-security.json
		persistence false
		user $(id -un)
		$extra
	EOF
	mosquitto -c "$WORK/$name$RUN_TAG.conf" >"$WORK/$name$RUN_TAG.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	wait_port "$port" "$pid" || return 1
	ADDR[$name]=127.0.0.1:$port
	BPID[$name]=$pid
}

# start_mosquitto_retry NAME CONF-LINES: a port found free may be taken
# before Mosquitto binds it; try a few.
start_mosquitto_retry() {
	for _ in 1 2 3 4 5; do
		start_mosquitto "$@" && return
		say "  $1 did not start ($(tail -1 "$WORK/$1$RUN_TAG.log")); trying another port"
	done
	die "$1 did not start; see $WORK/$1$RUN_TAG.log"
}

say "starting Mosquitto $(mosquitto -h 2>&1 | head -1 | awk '{print $3}') with dynamic security and creating $USERS users"
mkdir -p "$WORK/mosquitto"
mosquitto_ctrl dynsec init "$WORK/mosquitto/dynamic-security.json" admin "$MOSQ_ADMIN_PW" >/dev/null
start_mosquitto_retry mosquitto ""
MPORT=${ADDR[mosquitto]#127.0.0.1:}
ctrl() {
	local out
	out=$(mosquitto_ctrl -h 127.0.0.1 -p "$MPORT" -u admin -P "$MOSQ_ADMIN_PW" dynsec "$@" 2>&1) || die "mosquitto_ctrl dynsec $*: $out"
	case "$out" in *Error*) die "mosquitto_ctrl dynsec $*: $out" ;; esac
	printf '%s\n' "$out" | grep -v -e 'without encryption' -e 'visible on the network' -e '^$' || true
}
# readWrite on bench/# in warden's terms: publish, receive, and subscribe
# with any filter inside bench/#.
ctrl createRole bench
ctrl addRoleACL bench publishClientSend 'bench/#' allow
ctrl addRoleACL bench publishClientReceive 'bench/#' allow
ctrl addRoleACL bench subscribePattern 'bench/#' allow
# One createClient per mosquitto_ctrl call costs a connection each; the
# dynsec control topic takes a list of commands, so send them all at once.
{
	printf '{"commands":['
	for i in $(seq 0 $((USERS - 1))); do
		[ "$i" -gt 0 ] && printf ','
		printf '{"command":"createClient","username":"bench-%d","password":"%s","roles":[{"rolename":"bench"}]}' "$i" "$WARDEN_BENCH_PASSWORD"
	done
	printf ']}'
} >"$WORK/dynsec-batch.json"
mosquitto_sub -h 127.0.0.1 -p "$MPORT" -u admin -P "$MOSQ_ADMIN_PW" -t '$CONTROL/dynamic-security/v1/response' -C 1 -W 60 >"$WORK/dynsec-response.json" &
SUBPID=$!
PIDS+=("$SUBPID")
sleep 0.5
mosquitto_pub -h 127.0.0.1 -p "$MPORT" -u admin -P "$MOSQ_ADMIN_PW" -t '$CONTROL/dynamic-security/v1' -q 1 -f "$WORK/dynsec-batch.json"
wait "$SUBPID" || die "no answer from the dynamic security plugin"
grep -q '"error"' "$WORK/dynsec-response.json" && die "dynsec createClient: $(head -c 500 "$WORK/dynsec-response.json")"
ctrl getClient "bench-$((USERS - 1))" | grep -q 'bench' || die "Mosquitto user bench-$((USERS - 1)) missing"

say "starting Mosquitto with max_queued_messages 0 (same users)"
mkdir -p "$WORK/mosquitto-q0"
cp "$WORK/mosquitto/dynamic-security.json" "$WORK/mosquitto-q0/"
start_mosquitto_retry mosquitto-q0 "max_queued_messages 0"

# restart_brokers TAG: stops the four brokers and starts them again with
# the same settings and state (warden's data directory with its users,
# Mosquitto's dynsec file), as fresh processes: each round starts from
# the same memory, not from what the round before left (Go gives freed
# heap back to the OS only when told or minutes later; the retained
# case's store was the largest), and not from the setup's password hashing.
restart_brokers() {
	local t
	for t in warden warden-noauth mosquitto mosquitto-q0; do
		kill "${BPID[$t]}" 2>/dev/null || true
		wait "${BPID[$t]}" 2>/dev/null || true
	done
	RUN_TAG=$1
	start_warden warden "${WARDEN_ARGS[@]}"
	start_warden warden-noauth "${NOAUTH_ARGS[@]}"
	start_mosquitto_retry mosquitto ""
	start_mosquitto_retry mosquitto-q0 "max_queued_messages 0"
	for t in warden warden-noauth mosquitto mosquitto-q0; do
		say "  $t: ${ADDR[$t]} (pid ${BPID[$t]})"
	done
}

# ---- the cases ----
# name|scenario and flags|brokers it runs on. Counts and durations are
# chosen so the whole run fits in about 11 minutes on 2 cores (issue 21:
# under 15). Memory figures are differences of the broker's resident set,
# and a broker reuses memory it freed but still holds, so:
# - every round starts with freshly started brokers (restart_brokers);
# - each case reports the broker's RSS when it began
#   (broker_rss_before_mib) and its growth over that
#   (broker_rss_growth_mib) beside the maximum;
# - the cases whose per-client or per-message figures are RSS differences
#   (reconnect-storm, idle, retained) first wait, up to $SETTLE, until the
#   broker's RSS has stopped falling for 6 s (warden gives a burst's free
#   heap back within its --memory-return-interval, 5 s, of going quiet),
#   so they neither count nor reuse what the case before freed (connect,
#   first in the round, starts on a fresh broker);
# - idle comes after connect, whose warm-up leaves warden's verification
#   cache warm (no argon2id verification, and its heap growth, inside the
#   measurement), and before the message cases; retained, whose store is
#   the largest, comes last and clears its messages at the end.
if [ "$QUICK" = 1 ]; then
	N_CONNECT=500 N_STORM=100 D=1s DRAIN=2s DENIED_D=1s IDLE=1s SETTLE=20s
else
	N_CONNECT=10000 N_STORM=1000 D=3s DRAIN=4s DENIED_D=3s IDLE=5s SETTLE=20s
fi
ALL="warden warden-noauth mosquitto"
FLOW="warden warden-noauth mosquitto mosquitto-q0"
CASES=(
	"connect|connect --clients $N_CONNECT --concurrency 8 --users $USERS|$ALL"
	"reconnect-storm|reconnect-storm --clients $N_STORM --concurrency 16 --users $USERS --storm-timeout 60s --settle $SETTLE|$ALL"
	"idle|idle --clients $IDLE_CLIENTS --concurrency 32 --keepalive 60s --idle $IDLE --users $USERS --settle $SETTLE|$ALL"
	"pubsub-qos0|pubsub --qos 0 --publishers 4 --subscribers 4 --payload 100 --duration $D --drain $DRAIN --users $USERS|$FLOW"
	"pubsub-qos1|pubsub --qos 1 --publishers 4 --subscribers 4 --payload 100 --duration $D --drain $DRAIN --inflight 16 --connect-timeout 5s --users $USERS|$FLOW"
	"pubsub-qos0-1k|pubsub --qos 0 --publishers 4 --subscribers 4 --payload 100 --duration $D --drain $DRAIN --rate 1000 --users $USERS|$FLOW"
	"fanout|fanout --qos 0 --subscribers 50 --payload 100 --duration $D --drain $DRAIN --users $USERS|$FLOW"
	"denied|denied --legit 4 --flood 50 --users 20 --flood-offset 20 --flood-users 10 --duration $DENIED_D|warden mosquitto"
	"retained|retained --messages $RETAINED --payload 100 --first-wait 60s --drain 5s --timeout 180s --users $USERS --settle $SETTLE|$ALL"
)

: >"$RESULTS/tables.txt"
for round in $(seq "$ROUNDS"); do
	round_start=$(date +%s)
	say "round $round/$ROUNDS: restarting the brokers"
	restart_brokers "-r$round"
	for c in "${CASES[@]}"; do
		IFS='|' read -r name args targets <<<"$c"
		read -ra ts <<<"$targets"
		# Rotate the order each round, so no broker always runs first.
		n=${#ts[@]}
		for k in $(seq 0 $((n - 1))); do
			t=${ts[$(((k + round - 1) % n))]}
			out=$RESULTS/raw/r$round-$name-$t.json
			t0=$(date +%s%N)
			# shellcheck disable=SC2086 # args is a list of flags
			# --timeout first: a case's own flags come after it and win.
			if ! "$BENCH" ${args%% *} --timeout 120s ${args#* } --addr "${ADDR[$t]}" --broker-pid "${BPID[$t]}" --label "$t" --name "$name" \
				--json "$out" --quiet >>"$RESULTS/tables.txt" 2>>"$RESULTS/bench-errors.txt"; then
				say "  round $round/$ROUNDS $name on $t: FAILED (see $RESULTS/bench-errors.txt)"
				kill -0 "${BPID[$t]}" 2>/dev/null || die "$t is no longer running"
				continue
			fi
			tenths=$((($(date +%s%N) - t0) / 100000000))
			say "$(printf '  round %d/%d  %-16s %-14s %3d.%ds' "$round" "$ROUNDS" "$name" "$t" $((tenths / 10)) $((tenths % 10)))"
		done
	done
	say "round $round/$ROUNDS took $(($(date +%s) - round_start)) s (total so far $(($(date +%s) - START)) s)"
done

say "summary (medians over $ROUNDS rounds)"
"$BENCH" summarize --labels warden,warden-noauth,mosquitto,mosquitto-q0 \
	--ratio warden/mosquitto --ratio warden/mosquitto-q0 --ratio warden/warden-noauth \
	--target 'idle.broker_rss_per_client_kib<=16' \
	--json "$RESULTS/summary.json" "$RESULTS"/raw/*.json | tee "$RESULTS/summary.txt"
echo
say "total time: $(($(date +%s) - START)) s; results in $RESULTS"
