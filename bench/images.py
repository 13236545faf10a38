"""The one builder of dockyard's fixture app images, used by the tests, the demo and the bench.

No registry can be reached, so images are built `FROM scratch` with Debian's static busybox
(/bin/busybox, from the busybox-static package) and the scripts in bench/app/:

    web     busybox httpd with CGI (see bench/app/bin/app-web for its endpoints)
    worker  a loop that logs a line per second (bench/app/bin/app-worker)

Usage: ``python -m bench.images [TAG ...]`` builds the demo images (dockyard-demo:v1, :v2).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parent / "app"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DEMO_TAGS = ("dockyard-demo:v1", "dockyard-demo:v2")

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY bin/ /bin/
COPY www/ /www/
ENV APP_VERSION={version} PORT=5000{env}
EXPOSE 5000
CMD ["/bin/app-web"]
"""


def dockerfile(version: str, env: str = "") -> str:
    """The fixture app's Dockerfile; `env` adds ` NAME=value` pairs to its ENV line."""
    return DOCKERFILE.format(version=version, env=env)


class ImageBuildError(RuntimeError):
    """The fixture image could not be built."""


def find_static_busybox() -> str:
    """Path of a statically linked busybox, or ImageBuildError naming the package to install."""
    for candidate in BUSYBOX_CANDIDATES:
        if os.path.exists(candidate) and _is_static(candidate):
            return candidate
    raise ImageBuildError(
        "no static busybox found (looked at /bin/busybox, /usr/bin/busybox): "
        "install Debian's busybox-static package"
    )


def _is_static(path: str) -> bool:
    # A static ELF has no PT_INTERP segment; the dynamic loader's path shows up as a string.
    with open(path, "rb") as fh:
        head = fh.read(4096)
    return head[:4] == b"\x7fELF" and b"ld-linux" not in head


def build_context(version: str) -> bytes:
    """A tar of the Docker build context for the fixture app at `version`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile(version).encode(), 0o644)
        tar.add(find_static_busybox(), arcname="busybox", filter=_executable)
        for sub in ("bin", "www"):
            for path in sorted((APP_DIR / sub).rglob("*")):
                rel = path.relative_to(APP_DIR).as_posix()
                if path.is_dir():
                    tar.add(path, arcname=rel, recursive=False)
                elif "cgi-bin" in rel or sub == "bin":
                    tar.add(path, arcname=rel, filter=_executable)
                else:
                    tar.add(path, arcname=rel)
    return buf.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _executable(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode = 0o755
    info.uid = info.gid = 0
    return info


def build_app_image(
    tag: str,
    version: str = "v1",
    *,
    labels: Mapping[str, str] | None = None,
    client: Any = None,
) -> str:
    """Build the fixture app as `tag` (APP_VERSION=`version`) and return the image id."""
    import docker
    import docker.errors

    client = client or docker.from_env()
    try:
        image, _logs = client.images.build(
            fileobj=io.BytesIO(build_context(version)),
            custom_context=True,
            tag=tag,
            labels=dict(labels or {}),
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        lines = [str(chunk.get("stream") or chunk.get("error") or "") for chunk in exc.build_log]
        raise ImageBuildError(f"building {tag} failed: {exc.msg}\n{''.join(lines)}") from exc
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"building {tag} failed: {exc}") from exc
    return str(image.id)


# --- the nginx variant: nginx `return 200` FROM scratch, for host networking (issue 19) ------------

NGINX_BINARY = "/usr/sbin/nginx"
NGINX_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY root/ /
ENV APP_VERSION={version} PORT=5000
EXPOSE 5000
CMD ["/bin/sh", "-c", "mkdir -p /tmp && sed \\"s/@PORT@/$PORT/\\" /etc/nginx.tmpl > /tmp/nginx.conf && exec /usr/sbin/nginx -e stderr -c /tmp/nginx.conf"]
"""
NGINX_APP_CONF = """\
daemon off;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
user root root;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path /tmp/cb; proxy_temp_path /tmp/p; fastcgi_temp_path /tmp/f;
    uwsgi_temp_path /tmp/u; scgi_temp_path /tmp/s;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:@PORT@;
        location = /health {{ return 200 "ok"; }}
        location / {{ return 200 "{version} nginx\\n"; }}
    }}
}}
"""


def _shared_libraries(binary: str) -> list[str]:
    """The libraries `binary` loads (and the loader), as `ldd` resolves them here."""
    import subprocess

    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            found.append(path)
    return found


def build_nginx_app_image(tag: str, version: str = "v1", *, labels: Mapping[str, str] | None = None,
                          client: Any = None) -> str:
    """nginx answering `return 200` on 127.0.0.1:$PORT, FROM scratch with this machine's nginx
    binary and its libraries (the issue's independent check: an app on host networking)."""
    import docker

    if not os.path.exists(NGINX_BINARY):
        raise ImageBuildError(f"{NGINX_BINARY} is missing (the nginx app is this machine's nginx): "
                              "make test-deps, or apt-get install nginx-light")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", NGINX_DOCKERFILE.format(version=version).encode(), 0o644)
        tar.add(find_static_busybox(), arcname="busybox", filter=_executable)
        tar.add(os.path.realpath(NGINX_BINARY), arcname="root" + NGINX_BINARY, filter=_executable)
        for lib in _shared_libraries(NGINX_BINARY):
            tar.add(os.path.realpath(lib), arcname="root" + lib, filter=_executable)
        _add_bytes(tar, "root/etc/nginx.tmpl", NGINX_APP_CONF.format(version=version).encode(), 0o644)
        _add_bytes(tar, "root/etc/passwd", b"root:x:0:0:root:/:/bin/sh\n", 0o644)
        _add_bytes(tar, "root/etc/group", b"root:x:0:\n", 0o644)
    client = client or docker.from_env()
    image, _logs = client.images.build(fileobj=io.BytesIO(buf.getvalue()), custom_context=True, tag=tag,
                                       labels=dict(labels or {}), rm=True, forcerm=True)
    return str(image.id)


# --- the aiohttp variant: a Debian root made by debootstrap, imported as a base image ---------

PY_BASE = "dockyard-pybase:bookworm"
PY_DOCKERFILE = """\
FROM {base}
COPY pyapp.py /app/app.py
ENV APP_VERSION={version} PORT=5000 PYTHONUNBUFFERED=1
EXPOSE 5000
CMD ["python3", "/app/app.py"]
"""


def apt_mirror() -> str:
    """The Debian mirror this machine's apt already uses (deb822 or one-line sources)."""
    import glob

    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for line in open(path):
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    if os.path.exists("/etc/apt/sources.list"):
        for line in open("/etc/apt/sources.list"):
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[-3] if parts[1].startswith("[") else parts[1]
    return "http://deb.debian.org/debian"


def ensure_python_base(client: Any = None, *, labels: Mapping[str, str] | None = None) -> str:
    """The python3 + python3-aiohttp base image; built with debootstrap (about 35 s) only when
    `docker image inspect` does not find it."""
    import subprocess
    import tempfile

    import docker
    import docker.errors

    client = client or docker.from_env()
    try:
        client.images.get(PY_BASE)
        return PY_BASE
    except docker.errors.ImageNotFound:
        pass
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed: apt-get install debootstrap")
    with tempfile.TemporaryDirectory(prefix="dockyard-pybase-") as root:
        cmd = ["debootstrap", "--variant=minbase", "--include=python3,python3-aiohttp",
               "bookworm", root, apt_mirror()]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise ImageBuildError(f"debootstrap failed: {done.stderr[-2000:]}")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        changes = [f"LABEL {k}={v}" for k, v in (labels or {}).items()]
        client.api.import_image_from_stream(tar.stdout, repository=PY_BASE.split(":")[0],
                                            tag=PY_BASE.split(":")[1], changes=changes or None)
        tar.wait()
    return PY_BASE


def build_python_app_image(
    tag: str, version: str = "v1", *, labels: Mapping[str, str] | None = None, client: Any = None
) -> str:
    """The aiohttp fixture app (bench/app/pyapp.py) as `tag`; builds the base first if needed."""
    import docker

    client = client or docker.from_env()
    base = ensure_python_base(client)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", PY_DOCKERFILE.format(base=base, version=version).encode(), 0o644)
        tar.add(APP_DIR / "pyapp.py", arcname="pyapp.py")
    image, _ = client.images.build(fileobj=io.BytesIO(buf.getvalue()), custom_context=True,
                                   tag=tag, labels=dict(labels or {}), rm=True, forcerm=True)
    return str(image.id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.images", description=__doc__)
    parser.add_argument("tags", nargs="*", default=list(DEMO_TAGS), help="NAME:VERSION tags")
    args = parser.parse_args(argv)
    if shutil.which("docker") is None and not os.path.exists("/var/run/docker.sock"):
        print("bench.images: no Docker engine; run scripts/ensure-docker.sh", file=sys.stderr)
        return 1
    for tag in args.tags:
        version = tag.rsplit(":", 1)[1] if ":" in tag else "v1"
        try:
            image_id = build_app_image(tag, version)
        except ImageBuildError as exc:
            print(f"bench.images: {exc}", file=sys.stderr)
            return 1
        print(f"built {tag} ({image_id[:19]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
