"""What the browser tests share: a real ``serve`` process and a real headless Chromium.

* :func:`start_server` runs ``practice-events serve [--demo] --port 0 --json`` as
  a child process in a working directory (its store under ``var/`` there),
  reads the one JSON line it prints (url, demo token, pid) and waits for
  ``/readyz``; :meth:`Server.stop` sends SIGTERM and waits for the exit code.
* :func:`chromium` starts Debian's Chromium (``/usr/bin/chromium``) through
  ``/usr/bin/chromedriver`` with Selenium, headless, with a fresh profile and
  nothing that talks to the network by itself. ``make test`` installs both
  (``scripts/ensure-chromium.sh``); without them the browser tests are skipped
  with that hint.
* :func:`screenshot` saves a PNG under ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.harness import PLAIN_HTTP

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,2400",
)


@dataclass
class Server:
    """A running ``practice-events serve`` child process."""

    process: subprocess.Popen[bytes]
    url: str
    token: str | None
    workdir: Path
    log: Path
    started_seconds: float
    env: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        """GET ``path`` with the demo token (or ``token``)."""
        bearer = token or self.token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return httpx.get(
            self.url + path, params=params, headers=headers, timeout=30, verify=PLAIN_HTTP
        )

    def json(self, path: str, **params: Any) -> Any:
        """GET ``path`` and return its JSON body (asserting 200)."""
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another ``practice-events`` command on the same store (same directory)."""
        return subprocess.run(
            [sys.executable, "-m", "practice_events.cli", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop(self, timeout: float = 60.0) -> int:
        """Send SIGTERM and return the exit code (kill after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)

    def log_text(self) -> str:
        """What the server logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server child: this one without project settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRACTICE_EVENTS_")}
    env.update(
        {
            "PRACTICE_EVENTS_LOG_FORMAT": "console",
            "PRACTICE_EVENTS_SCHEDULER_INTERVAL_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def start_server(
    workdir: Path,
    *,
    demo: bool = True,
    env: dict[str, str] | None = None,
    ready_timeout: float = 240.0,
    command: str = "serve",
) -> Server:
    """Start ``practice-events serve`` in ``workdir`` and wait until ``/readyz`` says ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = server_env(env)
    log = workdir / f"server-{time.time_ns()}.log"
    args = [sys.executable, "-m", "practice_events.cli", command, "--port", "0", "--json"]
    if demo:
        args.append("--demo")
    started = time.monotonic()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            args, cwd=workdir, env=full_env, stdout=subprocess.PIPE, stderr=log_file
        )
    assert process.stdout is not None
    deadline = time.monotonic() + ready_timeout
    line = b""
    while not line.endswith(b"}\n"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"serve did not start:\n{log.read_text(errors='replace')[-4000:]}")
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            line += chunk
    announced = orjson.loads(line)
    server = Server(
        process=process,
        url=announced["url"],
        token=announced.get("demo_token"),
        workdir=workdir,
        log=log,
        started_seconds=0.0,
        env=full_env,
    )
    wait_ready(server, deadline)
    server.started_seconds = time.monotonic() - started
    return server


def wait_ready(server: Server, deadline: float) -> None:
    """Poll ``/readyz`` until it answers 200 (fail with the server's log at ``deadline``)."""
    while True:
        try:
            if httpx.get(server.url + "/readyz", timeout=5, verify=PLAIN_HTTP).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"serve never became ready:\n{server.log_text()[-4000:]}")
        time.sleep(0.2)


def chromium(profile: Path) -> Any:
    """A headless Chromium driven by Selenium, with a fresh profile in ``profile``."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Chromium is not installed: run `bash scripts/ensure-chromium.sh`")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


def screenshot(driver: Any, name: str) -> Path:
    """Save a PNG of the page under ``test-artifacts/`` and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait_for(driver: Any, condition: str, timeout: float = 30.0, *args: Any) -> Any:
    """Wait until the JavaScript expression ``condition`` is truthy; return its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = f"return ({condition});"
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script(script, *args)
    )


def wait_loaded(driver: Any, after: int = 0, timeout: float = 30.0) -> None:
    """Wait until the page finished a load beyond ``after`` and shows data."""
    wait_for(
        driver,
        "document.body.dataset.state === 'ready' && "
        f"Number(document.body.dataset.loads || 0) > {after}",
        timeout,
    )


def loads(driver: Any) -> int:
    """How many data loads the page has finished."""
    return int(driver.execute_script("return Number(document.body.dataset.loads || 0)"))


def browser_errors(driver: Any) -> list[str]:
    """Severe messages of the browser console (script errors, CSP violations)."""
    return [
        entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"
    ]
