#!/usr/bin/env bash
# Make sure a Docker engine answers. On Debian: install docker.io (and busybox-static, which the
# app images are built from) when missing, start dockerd in the background, and wait for it.
set -euo pipefail

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /bin/busybox ] && file_is_static=$(ldd /bin/busybox 2>&1 | grep -c "not a dynamic" || true) || file_is_static=0
[ "${file_is_static:-0}" -ge 1 ] || need_pkgs+=(busybox-static)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ ${#need_pkgs[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "ensure-docker: installing ${need_pkgs[*]}" >&2
        $SUDO apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_pkgs[@]}" >/dev/null
    else
        echo "ensure-docker: need ${need_pkgs[*]} but apt-get is not available; install them yourself" >&2
        exit 1
    fi
fi

if docker info >/dev/null 2>&1; then
    exit 0
fi

echo "ensure-docker: no Docker engine answers; starting dockerd" >&2
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl start docker || true
fi
if ! docker info >/dev/null 2>&1; then
    log=/tmp/dockyard-dockerd.log
    $SUDO sh -c "nohup dockerd >$log 2>&1 &"
fi
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "ensure-docker: Docker engine is up" >&2
        exit 0
    fi
    sleep 1
done
echo "ensure-docker: dockerd did not answer within 60 s; see /tmp/dockyard-dockerd.log" >&2
tail -20 /tmp/dockyard-dockerd.log >&2 || true
exit 1
