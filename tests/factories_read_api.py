"""Builders for read-API tests: a demo district served over real HTTP, with a token per role.

:class:`ReadApiEnv` ingests a small demo district (two institutes, eight
stations, ~16k events of January 2025) into a real store (SQLite file or a
fresh PostgreSQL database) through the real pipeline, builds every
projection, runs the projection runner in a background thread (as the
``projections run`` process would) and serves the app with the read-API
plugin on a real socket. Tokens: one per role, supervisors bound to
``WLY`` (district), ``WLY-SUO-01`` (institute) and ``WLY-ZHAN-01``
(station), a second station supervisor in the other institute, producers
bound to two test sources.

Building one costs seconds, so :func:`shared_env` keeps one per backend for
the whole session (test modules import the ``read_api_env`` fixture).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings
from practice_events.demo.generator import Generation
from practice_events.ingest.pipeline import RawInput
from projections.registry import all_projections
from projections.runner import BatchedRunner
from projections.viewstore import ViewStore, default_view_url
from tests.factories_api import LiveServer, live_server
from tests.harness import PLAIN_HTTP

PERIOD = "2025-01"
"""The month the demo district's history covers."""

CENTRE = "WLY"
INSTITUTE = "WLY-SUO-01"
OTHER_INSTITUTE = "WLY-SUO-02"
STATION = "WLY-ZHAN-01"
OTHER_STATION = "WLY-ZHAN-05"
PRODUCER_SOURCE = "urn:test:producer-a"
OTHER_SOURCE = "urn:test:producer-b"

ROLES = ("district", "institute", "station", "other_station", "producer", "auditor")
"""Names of the test tokens (see :class:`ReadApiEnv`)."""

TOKEN_UNITS: Mapping[str, str | None] = {
    "district": CENTRE,
    "institute": INSTITUTE,
    "station": STATION,
    "other_station": OTHER_STATION,
    "producer": None,
    "auditor": None,
}


@dataclass
class ReadApiEnv:
    """A served demo district and what tests need to judge the answers."""

    store_url: str
    server: LiveServer
    runner: BatchedRunner
    views: ViewStore
    tokens: dict[str, str] = field(default_factory=dict)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every site (auditor's view), by id, with its ``path``."""
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return self.server.url

    def client(self, role: str | None, **headers: str) -> httpx.Client:
        """An HTTP client with the token of ``role`` (None: no token)."""
        sent = dict(headers)
        if role is not None:
            sent["Authorization"] = f"Bearer {self.tokens[role]}"
        return httpx.Client(base_url=self.url, headers=sent, timeout=60, verify=PLAIN_HTTP)

    def get(self, role: str | None, path: str, **headers: str) -> httpx.Response:
        """GET ``path`` as ``role``."""
        with self.client(role, **headers) as http:
            return http.get(path)

    def subtree(self, unit: str) -> set[str]:
        """``unit`` and every site under it."""
        return {s for s, row in self.sites.items() if unit in row["path"].split(" > ")}

    def visible(self, role: str) -> set[str] | None:
        """The site ids ``role`` may see (None: all)."""
        unit = TOKEN_UNITS[role]
        if role == "auditor":
            return None
        if unit is None:
            return set()
        return self.subtree(unit)

    def post_events(self, role: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """POST a batch of CloudEvents as ``role``; return the answer."""
        with self.client(role, **{"content-type": "application/cloudevents-batch+json"}) as http:
            response = http.post("/v1/events:batch", content=orjson.dumps(events))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def close(self) -> None:
        """Stop the server and the runner, close the stores."""
        self.stack.close()


def ingest_demo(settings: Settings) -> None:
    """Ingest the small demo district through the real pipeline and build every view."""
    app = build_app(settings)
    try:
        pipeline = build_pipeline(settings, app)
        batch: list[RawInput] = []
        for n, event in enumerate(Generation(seed=7, days=21, events=17_000).events()):
            batch.append(RawInput(orjson.dumps(event), channel="test", position=f"demo:{n}"))
            if len(batch) == 1000:
                pipeline.process(batch)
                batch = []
        if batch:
            pipeline.process(batch)
        views = ViewStore(default_view_url(settings.store))
        try:
            BatchedRunner(app, views, all_projections(settings)).catch_up()
        finally:
            views.close()
    finally:
        app.close()


def build_env(store_url: str, on_close: Callable[[], object] | None = None) -> ReadApiEnv:
    """Ingest the demo, start a runner thread and the server, issue the tokens.

    ``on_close`` runs last when the environment closes (e.g. drop its database).
    """
    stack = contextlib.ExitStack()
    if on_close is not None:
        stack.callback(on_close)
    try:
        settings = Settings(store=store_url)
        ingest_demo(settings)
        server = stack.enter_context(live_server(settings, plugins=("projections",)))
        runtime = server.runtime_or_fail()
        views = ViewStore(default_view_url(store_url))
        stack.callback(views.close)
        runner = BatchedRunner(runtime.store, views, all_projections(settings), poll_interval=0.01)
        runner.start()
        stack.callback(runner.stop)
        env = ReadApiEnv(store_url, server, runner, views, stack=stack)
        issue = runtime.tokens.issue
        env.tokens = {
            "district": issue("district_supervisor", unit=CENTRE).secret,
            "institute": issue("institute_supervisor", unit=INSTITUTE).secret,
            "station": issue("station_supervisor", unit=STATION).secret,
            "other_station": issue("station_supervisor", unit=OTHER_STATION).secret,
            "producer": issue("producer", sources=[PRODUCER_SOURCE]).secret,
            "other_producer": issue("producer", sources=[OTHER_SOURCE]).secret,
            "auditor": issue("auditor").secret,
        }
        units = env.get("auditor", "/v1/units").json()["items"]
        env.sites = {row["site_id"]: row for row in units}
        return env
    except BaseException:
        stack.close()
        raise


_ENVS: dict[str, ReadApiEnv] = {}
_LOCK = threading.Lock()


def shared_env(backend: str, tmp_root: Path) -> ReadApiEnv:
    """The session's environment for ``backend`` (built on first use)."""
    with _LOCK:
        env = _ENVS.get(backend)
        if env is None:
            if backend == "sqlite":
                env = build_env(f"sqlite:///{tmp_root / 'read-api-store.db'}")
            else:
                from tests.conftest import create_database, drop_database

                name = f"pe_test_api_{uuid.uuid4().hex[:10]}"
                env = build_env(create_database(name), lambda: drop_database(name))
            _ENVS[backend] = env
        return env


def close_envs() -> None:
    """Close every shared environment (idempotent)."""
    with _LOCK:
        envs = list(_ENVS.values())
        _ENVS.clear()
    for env in envs:
        env.close()


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def read_api_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ReadApiEnv:
    """A served demo district on SQLite and on PostgreSQL (shared by the session)."""
    env = shared_env(request.param, tmp_path_factory.mktemp(f"read-api-{request.param}"))
    request.session.config.add_cleanup(close_envs)
    return env
