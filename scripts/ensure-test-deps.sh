#!/usr/bin/env bash
# Install what the test suite needs besides Python packages, when it is missing (Debian):
# nginx and wrk (the peer in the bench smoke test), git (pushes), pebble (the ACME test server),
# debootstrap (the aiohttp app's base image), gcc and the Python headers (the compiled proxy),
# chromium (the dashboard's browser tests, driven by Playwright: it never downloads a browser).
# `make test` runs this, so a fresh machine needs only `make test`; .ci/run calls `make test`.
set -euo pipefail
PYTHON="${1:-python3}"

missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v pebble >/dev/null 2>&1 || missing+=(pebble)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -x /usr/bin/chromium ] || missing+=(chromium)
"$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)

[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-deps: the tests need ${missing[*]}; install them yourself (no apt-get here)" >&2
    exit 1
fi
echo "ensure-test-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
