#!/usr/bin/env bash
# Debian's python3 ships without venv/ensurepip: install python3-venv when they are missing.
set -euo pipefail
PYTHON="${1:-python3}"
if "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
    echo "ensure-python-venv: installing python3-venv" >&2
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-venv >/dev/null
else
    echo "ensure-python-venv: $PYTHON has no venv module; install it (python3-venv)" >&2
    exit 1
fi
