"""``practice-events api --workers 2``: two server processes on one port, one store.

A real process tree (uvicorn's supervisor and two spawned workers) on a real
SQLite file. Producers post over fresh connections, which the kernel hands
to either worker; every event is stored once, and SIGTERM to the parent
stops both workers gracefully (each closes its runtime) with exit code 0.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.browser import Server, server_env, wait_ready
from tests.factories_api import CE_JSON, centre, institute

pytestmark = pytest.mark.slow


def workers_of(parent: int) -> list[int]:
    """The pids of the worker processes uvicorn's supervisor ``parent`` spawned."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def start_api(workdir: Path, store: str, workers: int) -> Server:
    """Start ``practice-events api --workers N`` and wait until it is ready."""
    env = server_env()
    log = workdir / "api.log"
    args = [sys.executable, "-m", "practice_events.cli", "api", "--port", "0", "--json"]
    args += ["--workers", str(workers), "--store", store]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=log_file
        )
    assert process.stdout is not None
    deadline = time.monotonic() + 180
    line = b""
    while not line.endswith(b"}\n"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"api did not start:\n{log.read_text(errors='replace')[-4000:]}")
        if select.select([process.stdout], [], [], 0.5)[0]:
            line += os.read(process.stdout.fileno(), 4096)
    url = orjson.loads(line)["url"]
    server = Server(process, url, None, workdir, log, 0.0, env)
    wait_ready(server, deadline)
    # /readyz answered from one worker; wait until the supervisor has both.
    while (
        len(workers_of(process.pid)) < workers
        or server.log_text().count("Application startup complete") < workers
    ):
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"the workers did not all start:\n{server.log_text()[-4000:]}")
        time.sleep(0.2)
    return server


def test_two_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    from practice_events.auth.tokens import token_store
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings

    store = f"sqlite:///{tmp_path / 'store.db'}"
    app = build_app(Settings(store=store))
    try:
        secret = token_store(app).issue("producer", sources=["urn:test:*"]).secret
    finally:
        app.close()

    server = start_api(tmp_path, store, workers=2)
    try:
        children = workers_of(server.process.pid)
        assert len(children) == 2
        headers = {"authorization": f"Bearer {secret}", "content-type": CE_JSON}
        events = [centre(source="urn:test:w", event_id="c-1")]
        events += [institute(f"I-{n}", source="urn:test:w", event_id=f"i-{n}") for n in range(12)]
        for event in events:  # one connection per request: the kernel picks the worker
            response = httpx.post(
                f"{server.url}/v1/events", content=orjson.dumps(event), headers=headers
            )
            assert response.status_code == 202, response.text
            assert response.json()["status"] == "accepted"
        again = httpx.post(
            f"{server.url}/v1/events", content=orjson.dumps(events[3]), headers=headers
        )
        assert again.json()["status"] == "duplicate"
    finally:
        code = server.stop()
    assert code == 0, server.log_text()[-4000:]
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)
    log = server.log_text()
    assert log.count("http_runtime_closed") == 2, "each worker closes its own runtime"

    app = build_app(Settings(store=store))
    try:
        assert app.store.count_ingested_keys() == len(events)
    finally:
        app.close()
