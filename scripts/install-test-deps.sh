#!/usr/bin/env bash
# Installs what the test suite talks to when it is missing: a real
# redis-server (store contract suite) and the Mosquitto command-line clients
# (interop tests), openssl (device onboarding), oathtool (the independent
# TOTP implementation the MFA tests check warden against), and curl and jq
# (the README test runs README.md's examples, which use them), and
# OpenLDAP's slapd and the ldap-utils clients (internal/ldaptest runs a
# throw-away slapd of its own from a generated configuration; it never uses
# the system instance the slapd package may start), and
# nats-server 2.10 or later (the README's NATS cluster walkthrough; 2.10
# brought the auth callout), built with go install at the version go.mod
# pins, since distributions package older ones. Uses apt-get where it
# exists; elsewhere it says what to install and fails, because the tests
# fail without these programs.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
	sudo=(sudo)
fi

# nats_ok: nats-server on PATH is 2.10 or later.
nats_ok() {
	local v major minor
	v=$(nats-server --version 2>/dev/null) || return 1
	v=${v##*v}
	major=${v%%.*}
	minor=${v#*.}
	minor=${minor%%.*}
	[[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
	[ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }
}

if ! nats_ok; then
	version=$(awk '$1 == "github.com/nats-io/nats-server/v2" { print $2 }' go.mod)
	echo "installing nats-server $version (go install)" >&2
	go install "github.com/nats-io/nats-server/v2@$version"
	gobin=$(go env GOBIN)
	gobin=${gobin:-$(go env GOPATH)/bin}
	# go install's directory is often not on PATH (CI), or an older
	# nats-server comes first: put it where PATH looks.
	if ! nats_ok; then
		if [ "$(id -u)" -ne 0 ] && [ ${#sudo[@]} -eq 0 ]; then
			echo "nats-server $version is in $gobin: put that directory first on PATH, or run as root or with sudo to install it into /usr/local/bin." >&2
			exit 1
		fi
		"${sudo[@]}" install -m 0755 "$gobin/nats-server" /usr/local/bin/nats-server
		hash -r
		if ! nats_ok; then
			echo "nats-server $version is in /usr/local/bin, but PATH finds $(command -v nats-server) first: put /usr/local/bin first." >&2
			exit 1
		fi
	fi
fi

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
{ command -v mosquitto_pub >/dev/null 2>&1 && command -v mosquitto_sub >/dev/null 2>&1; } || need+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; } || need+=(docker-compose)
command -v oathtool >/dev/null 2>&1 || need+=(oathtool)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)
# slapd lives in /usr/sbin, often not on a non-root PATH.
{ command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ]; } || need+=(slapd)
{ command -v ldapadd >/dev/null 2>&1 && command -v ldapmodify >/dev/null 2>&1; } || need+=(ldap-utils)
# The web UI's browser tests drive Debian's chromium headless; a font, so
# that its pages (and the screenshots in docs/ui) render text.
{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "make test needs: ${need[*]} (redis-server, the mosquitto_pub/mosquitto_sub clients, openssl, oathtool, curl, jq, slapd, ldap-utils, chromium, fonts-dejavu-core)." >&2
	echo "apt-get is not available here: install them with your package manager, then run make test again." >&2
	exit 1
fi

if [ "$(id -u)" -ne 0 ] && [ ${#sudo[@]} -eq 0 ]; then
	echo "make test needs: ${need[*]}; run as root or install sudo (apt-get needs root)." >&2
	exit 1
fi

echo "installing test dependencies: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
