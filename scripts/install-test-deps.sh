#!/usr/bin/env bash
# Installs what the test suite talks to when it is missing: a real
# redis-server (store contract suite) and the Mosquitto command-line clients
# (interop tests), openssl (device onboarding), oathtool (the independent
# TOTP implementation the MFA tests check warden against), and curl and jq
# (the README test runs README.md's examples, which use them). Uses apt-get
# where it exists; elsewhere it says what to install and fails, because the
# tests fail without these programs.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
{ command -v mosquitto_pub >/dev/null 2>&1 && command -v mosquitto_sub >/dev/null 2>&1; } || need+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; } || need+=(docker-compose)
command -v oathtool >/dev/null 2>&1 || need+=(oathtool)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "make test needs: ${need[*]} (redis-server, the mosquitto_pub/mosquitto_sub clients, openssl, oathtool, curl, jq)." >&2
	echo "apt-get is not available here: install them with your package manager, then run make test again." >&2
	exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		echo "make test needs: ${need[*]}; run as root or install sudo (apt-get needs root)." >&2
		exit 1
	fi
fi

echo "installing test dependencies: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
