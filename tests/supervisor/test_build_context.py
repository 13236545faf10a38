"""Issue 18, items 3 and 11: build contexts are streamed to disk with a byte cap, never extracted
in Python; git repositories refuse oversized pushes and check objects; builds time out."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.git import buildcontext
from supervisor.git import repo as gitrepo
from supervisor.git.buildcontext import ContextError
from supervisor.runtime import builds
from supervisor.runtime.docker import DockerRuntime
from tests.conftest import TEST_LABELS
from tests.utils import make_config

MiB = 1 << 20


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def work_repo(tmp: Path, files: dict[str, bytes]) -> tuple[Path, str]:
    work = tmp / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    for name, data in files.items():
        (work / name).write_bytes(data)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "c")
    return work, git(work, "rev-parse", "HEAD")


def tar_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as out:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            out.addfile(info)
    return buf.getvalue()


async def chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture
def no_extraction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if anything extracts a tar member to disk (the data filter's bypasses, item 11)."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a tar was extracted in Python")

    for name in ("extract", "extractall", "_extract_member"):
        monkeypatch.setattr(tarfile.TarFile, name, refuse)
    yield


# item 3: the git archive is streamed to disk and capped -------------------------------------------


async def test_git_export_streams_to_a_file_with_a_byte_cap(tmp_path: Path, no_extraction: None) -> None:
    # 8 MiB of zeros compress to a few KiB in the pack: only the archive is large.
    work, rev = work_repo(tmp_path, {"Dockerfile": b"FROM scratch\n", "zero.bin": bytes(8 * MiB)})
    state = tmp_path / "state"
    with pytest.raises(gitrepo.GitError, match="larger than max_build_context"):
        await gitrepo.export(work / ".git", rev, state_dir=state, limit=2 * MiB)
    left = [p.name for p in (state / buildcontext.BUILDS_DIR_NAME).iterdir()]
    assert left == [buildcontext.LOCK_NAME]  # the partial file is gone (the lock file stays)
    context = await gitrepo.export(work / ".git", rev, state_dir=state, limit=16 * MiB)
    try:
        assert context.path.is_file() and context.size == context.path.stat().st_size > 8 * MiB
        assert context.path.is_relative_to(state / buildcontext.BUILDS_DIR_NAME)
    finally:
        context.close()
    assert not context.path.exists()


async def test_an_uploaded_context_is_streamed_and_capped(tmp_path: Path, no_extraction: None) -> None:
    data = tar_bytes({"Dockerfile": b"FROM scratch\n", "big": bytes(3 * MiB)})
    with pytest.raises(ContextError, match="larger than max_build_context"):
        await buildcontext.from_stream(chunks(data), tmp_path, 1 * MiB)
    context = await buildcontext.from_stream(chunks(data), tmp_path, 8 * MiB)
    assert context.size == len(data)
    context.close()


def test_init_repo_sets_max_input_size_and_fsck_objects_also_on_existing_repos(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"web": {"build": "git"}}, max_build_context=2 * MiB)
    path = gitrepo.repo_path(config, "web")
    path.parent.mkdir(parents=True)
    subprocess.run(["git", "init", "--bare", "-q", str(path)], check=True)  # made by an older dockyard
    gitrepo.ensure_repos(config)
    assert git(tmp_path, "--git-dir", str(path), "config", "receive.maxInputSize") == str(2 * MiB)
    assert git(tmp_path, "--git-dir", str(path), "config", "receive.fsckObjects") == "true"


def test_a_push_larger_than_max_build_context_is_refused_by_git(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"web": {"build": "git"}}, max_build_context=1 * MiB)
    [repo] = gitrepo.ensure_repos(config)
    work, _rev = work_repo(tmp_path, {"Dockerfile": b"FROM scratch\n", "noise.bin": os.urandom(3 * MiB)})
    done = subprocess.run(["git", "push", str(repo), "HEAD:main"], cwd=work, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "HOME": str(work)})
    assert done.returncode != 0 and "exceeds maximum allowed size" in done.stderr
    assert gitrepo.ZERO_REV not in done.stderr and "pre-receive" not in done.stderr  # the hook never ran


# item 11: nothing is extracted; what Docker gets is the tar itself ---------------------------------


async def test_a_hostile_tar_is_never_extracted(tmp_path: Path, no_extraction: None) -> None:
    data = tar_bytes(
        {"Dockerfile": b"FROM scratch\n", "../../escaped.txt": b"x", "/abs.txt": b"y",
         "Procfile": b"web: run\n", "app.json": b'{"scripts": {}}'},
        links={"link": "/etc/passwd", "app.json.link": "/etc/shadow"},
    )
    context = await buildcontext.from_stream(chunks(data), tmp_path / "state", 8 * MiB)
    try:
        assert context.texts == {"Procfile": "web: run\n", "app.json": '{"scripts": {}}'}
        assert context.path.read_bytes() == data  # Docker reads it as it came
        assert not (tmp_path / "escaped.txt").exists() and not Path("/abs.txt").exists()
    finally:
        context.close()


async def test_a_symlinked_procfile_is_not_followed(tmp_path: Path) -> None:
    data = tar_bytes({"Dockerfile": b"FROM scratch\n"}, links={"Procfile": "/etc/passwd"})
    context = await buildcontext.from_stream(chunks(data), tmp_path, 8 * MiB)
    assert "Procfile" not in context.texts
    context.close()


async def test_dockerignore_is_applied_to_a_pushed_context(tmp_path: Path, no_extraction: None) -> None:
    data = tar_bytes({"Dockerfile": b"FROM scratch\n", ".dockerignore": b"secret.txt\nnode_modules\n",
                      "secret.txt": b"s", "node_modules/a/b.js": b"b", "app.py": b"a"})
    context = await buildcontext.from_stream(chunks(data), tmp_path, 8 * MiB)
    try:
        with tarfile.open(context.path) as kept:
            names = sorted(kept.getnames())
        assert names == [".dockerignore", "Dockerfile", "app.py"]
    finally:
        context.close()


async def test_no_dockerfile_and_not_a_tar_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="no Dockerfile at the root"):
        await buildcontext.from_stream(chunks(tar_bytes({"app.py": b"a"})), tmp_path, MiB)
    with pytest.raises(ContextError, match="not a readable tar"):
        await buildcontext.from_stream(chunks(b"\x01" * 2048), tmp_path, MiB)


# item 3: build_timeout -----------------------------------------------------------------------------


@pytest.mark.docker
async def test_a_hung_build_times_out_and_frees_the_app(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    hung = tar_bytes({"Dockerfile": f"FROM {app_images['v1']}\nRUN sleep 600\n".encode()})
    context = await buildcontext.from_stream(chunks(hung), tmp_path, 8 * MiB)
    tag = f"dockyard-test-hung-{os.getpid()}:1"
    try:
        with pytest.raises(builds.BuildError, match=r"timed out after 3s \(build_timeout\)"):
            await DockerRuntime(docker_client).build(
                context.path, builds.BuildRequest(app="hung", tag=tag, labels=TEST_LABELS, timeout=3))
    finally:
        context.close()
    quick = tar_bytes({"Dockerfile": f"FROM {app_images['v1']}\nRUN true\n".encode()})
    context = await buildcontext.from_stream(chunks(quick), tmp_path, 8 * MiB)
    try:
        assert await DockerRuntime(docker_client).build(
            context.path, builds.BuildRequest(app="hung", tag=tag, labels=TEST_LABELS))
    finally:
        context.close()


KILLED_MID_BUILD = """\
import sys
from pathlib import Path
from supervisor.git import buildcontext
where = buildcontext.workdir(Path(sys.argv[1]))
(where.path / "archive.tar").write_bytes(b"half a context")
print(where.path, flush=True)
sys.stdin.read()  # until killed
"""


def test_sweep_removes_what_a_killed_build_left_and_keeps_live_ones(tmp_path: Path) -> None:
    state = tmp_path / "state"
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_BUILD, str(state)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert child.stdout is not None
    killed = Path(child.stdout.readline().strip())
    try:
        assert buildcontext.sweep(state) == []  # held by a live process: kept
        assert (killed / "archive.tar").is_file()
    finally:
        child.kill()
        child.wait()
    old = state / buildcontext.BUILDS_DIR_NAME / "ctx-older"  # an older dockyard's: no lock file
    old.mkdir()
    live = buildcontext.workdir(state)  # this process's build in progress
    try:
        assert sorted(buildcontext.sweep(state)) == sorted([killed, old])
        assert not killed.exists() and not old.exists() and live.path.is_dir()
    finally:
        live.remove()
    assert not live.path.exists() and buildcontext.sweep(state) == []
