"""Issue 18, items 1-2: what a pushed repository or a careless config hands the daemon is
bounded (sizes, lengths, buffers) and parsed once, off the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from scheduler.oneoff import OutputTail
from supervisor.config import appjson
from supervisor.config import repo as repoapp
from supervisor.config.appjson import cron_id, load_app_json, parse_app_json
from supervisor.config.procfile import load_procfile, parse_procfile
from supervisor.deploy.checks import read_head
from supervisor.model import defaults
from supervisor.model.errors import ConfigError
from supervisor.model.spec import AppSpec
from supervisor.runtime import builds
from supervisor.runtime.docker import DockerRuntime
from supervisor.runtime.outputtail import LineSplitter
from tests.utils import make_config

BIG_COMMAND = "echo " + "x" * defaults.MAX_CRON_COMMAND


def _one_line_error(exc: ConfigError, file: str, key: str) -> str:
    assert len(exc.problems) == 1, exc.problems
    text = str(exc.problems[0])
    assert text.startswith(f"{file}: {key}") and "\n" not in text, text
    return text


# item 1: lengths and sizes ----------------------------------------------------------------


def test_app_json_cron_command_over_the_cap_is_one_clear_error() -> None:
    text = json.dumps({"cron": [{"command": BIG_COMMAND, "schedule": "@daily"}]})
    with pytest.raises(ConfigError) as caught:
        parse_app_json(text, "app.json", app="a")
    message = _one_line_error(caught.value, "app.json", "cron[0].command")
    assert f"more than the {defaults.MAX_CRON_COMMAND} allowed" in message


def test_app_json_cron_schedule_over_the_cap_is_one_clear_error() -> None:
    text = json.dumps({"cron": [{"command": "true", "schedule": "* " * 2049 + "*"}]})
    with pytest.raises(ConfigError) as caught:
        parse_app_json(text, "app.json", app="a")
    _one_line_error(caught.value, "app.json", "cron[0].schedule")


def test_toml_cron_command_over_the_cap_is_one_clear_error(tmp_path: Path) -> None:
    apps = {"a": {"image": "x", "cron": [{"command": BIG_COMMAND, "schedule": "@daily"}]}}
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, apps)
    _one_line_error(caught.value, str(tmp_path / "dockyard.toml"), "apps.a.cron[0].command")


def test_app_json_and_procfile_over_one_mib_are_refused_before_parsing(tmp_path: Path) -> None:
    big = "{" + " " * defaults.MAX_REPO_FILE_BYTES + "}"
    for parse in (lambda: parse_app_json(big, "app.json"), lambda: parse_procfile(big, "Procfile")):
        with pytest.raises(ConfigError) as caught:
            parse()
        assert "larger than 1024 KiB" in str(caught.value.problems[0])
    (tmp_path / "app.json").write_text(big)
    (tmp_path / "Procfile").write_text("web: " + "x" * defaults.MAX_REPO_FILE_BYTES)
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_app_json(tmp_path / "app.json")
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_procfile(tmp_path / "Procfile")
    with pytest.raises(builds.BuildError, match=r"^app.json: is larger than 1024 KiB"):
        builds.read_text(tmp_path, "app.json")


def test_a_config_app_json_over_the_cap_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "app.json").write_text("{" + " " * defaults.MAX_REPO_FILE_BYTES + "}")
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, {"a": {"image": "x", "app_json": "app.json"}})
    texts = [str(p) for p in caught.value.problems]
    assert texts[0].startswith(f"{tmp_path / 'app.json'}: ") and "larger than 1024 KiB" in texts[0]


# item 1: the cron id is Dokku's, computed once -----------------------------------------------


def _old_cron_id(app: str, command: str, schedule: str) -> str:
    """The original digit-at-a-time reference (quadratic: for checking values only)."""
    data = f"{app}==={command}==={schedule}".encode()
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, rest = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
    return "0" * (len(data) - len(data.lstrip(b"\0"))) + digits


@pytest.mark.parametrize(
    "app,command,schedule",
    [("myapp", "echo hi", "@daily"), ("", "", ""), ("\0a", "x" * 300, "*/5 * * * *"), ("a", "é\0", "@hourly")],
)
def test_cron_id_keeps_dokkus_value(app: str, command: str, schedule: str) -> None:
    assert cron_id(app, command, schedule) == _old_cron_id(app, command, schedule)


def test_base36_takes_five_digits_per_pass_over_the_number() -> None:
    number = int.from_bytes(b"\xff" * 512, "big")
    passes = 0
    real_divmod = divmod

    class Counting(int):
        def __divmod__(self, other: Any) -> Any:
            nonlocal passes
            passes += 1
            q, r = real_divmod(int(self), other)
            return Counting(q), r

    digits = appjson.base36(Counting(number))
    assert int(digits, 36) == number
    assert passes <= len(digits) // 5 + 1  # not one pass per digit


def test_cron_ids_are_computed_once_per_task() -> None:
    text = json.dumps({"cron": [{"command": f"task-{i} " + "y" * 4000, "schedule": "@daily"} for i in range(3)]})
    parse_app_json(text, "app.json", app="once")
    misses = appjson._cron_id.cache_info().misses
    for _ in range(5):  # reloads and restarts re-read the same app.json
        parse_app_json(text, "app.json", app="once")
    assert appjson._cron_id.cache_info().misses == misses


def test_repository_files_parsed_in_a_worker_are_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = repoapp.parse_app_json

    def counting(text: str, path: str, *, app: str = "") -> Any:
        calls.append(threading.current_thread().name)
        return real(text, path, app=app)

    monkeypatch.setattr(repoapp, "parse_app_json", counting)
    files = repoapp.RepoFiles(None, json.dumps({"cron": [{"command": "true", "schedule": "@hourly"}]}), "abc1234")
    app = AppSpec(name="memo")
    done = threading.Thread(target=repoapp.with_repo, args=(app, files), name="push-worker")
    done.start()
    done.join()
    merged = repoapp.with_repo(app, files)  # after the deploy, at reload: on the event loop
    assert calls == ["push-worker"] and merged.cron[0].schedule == "@hourly"


def test_json_comments_are_stripped_in_one_regex_pass() -> None:
    text = '{"a": "// not, a comment", /* c */ "b": [1, 2, // x\n ], }'
    assert json.loads(appjson.strip_json_comments(text)) == {"a": "// not, a comment", "b": [1, 2]}
    assert len(appjson.strip_json_comments(text)) == len(text)


# item 2: output buffers ----------------------------------------------------------------------


def test_an_unfinished_line_is_emitted_in_capped_pieces_and_the_buffer_stays_bounded() -> None:
    tail = OutputTail(64 * 1024)
    cap = defaults.OUTPUT_LINE_MAX
    emitted: list[str] = []
    chunk = b"z" * 4096
    for _ in range(256):  # 1 MiB without a newline
        emitted += tail.feed(chunk)
        assert tail.buffered <= 2 * tail.limit + cap
    emitted += tail.flush()
    assert all(len(line) <= cap for line in emitted)
    assert sum(len(line) for line in emitted) == 1 << 20
    assert tail.text().startswith("[output truncated to the last 64 KB]")


def test_line_splitter_matches_split_for_ordinary_lines() -> None:
    data = b"one\ntwo\n\nthree-is-longer\nfour"
    for size in (1, 2, 3, 5, 64):
        splitter = LineSplitter(max_line=64)
        lines: list[bytes] = []
        for i in range(0, len(data), size):
            lines += splitter.feed(data[i : i + size])
        assert lines + splitter.flush() == data.split(b"\n")


def test_line_splitter_scans_only_the_new_chunk() -> None:
    splitter = LineSplitter(max_line=1 << 20)
    seen = 0

    class Chunk(bytes):
        def find(self, *args: Any) -> int:  # type: ignore[override]
            nonlocal seen
            seen += len(self) - (args[1] if len(args) > 1 else 0)
            return super().find(*args)

    for _ in range(100):
        splitter.feed(Chunk(b"a" * 1000))
    assert seen == 100 * 1000  # linear: the pending 100 KB are never rescanned


async def test_build_output_without_newlines_comes_in_capped_pieces() -> None:
    class Api:
        def build(self, **_kwargs: Any) -> Any:
            for _ in range(64):
                yield {"stream": "b" * 16384}  # 1 MiB without a newline
            yield {"aux": {"ID": "sha256:feed"}}

    class Client:
        api = Api()

    lines: list[str] = []
    request = builds.BuildRequest(app="a", tag="a:1", on_line=lines.append)
    image = await DockerRuntime(Client()).build(b"", request)
    await asyncio.sleep(0)  # on_line runs via call_soon_threadsafe
    assert image == "sha256:feed"
    assert lines and all(len(line) <= defaults.OUTPUT_LINE_MAX for line in lines)
    assert sum(len(line) for line in lines) == 1 << 20


async def test_a_content_check_reads_at_most_the_first_64_kib() -> None:
    async def huge(_request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(_request)
        for _ in range(256):  # 16 MiB, never read
            await response.write(b"h" * 65536)
        return response

    app = web.Application()
    app.router.add_get("/", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    import aiohttp

    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
            body = await read_head(resp.content, defaults.CHECK_BODY_MAX)
        assert len(body) == defaults.CHECK_BODY_MAX
    finally:
        await runner.cleanup()


@pytest.mark.docker
async def test_a_oneoff_containers_output_is_read_as_a_capped_tail(docker_client: Any, app_images: dict[str, str]) -> None:
    from supervisor.runtime.protocol import ContainerSpec
    from tests.conftest import SESSION
    from tests.utils import LabellingRuntime

    runtime = LabellingRuntime(docker_client)
    spec = ContainerSpec(
        name=f"dockyard-test-{SESSION}-bigout", image=app_images["v1"],
        command="head -c 4194304 /dev/zero | tr '\\0' x; echo; echo last-line",
        env={}, labels={"dockyard.instance": f"t{SESSION}-bigout"},
    )
    result = await runtime.run_oneoff(spec, 60)
    assert result.exit_code == 0
    assert len(result.output) <= defaults.ONEOFF_OUTPUT_KB * 1024 + 100
    assert result.output.rstrip().endswith("last-line")
