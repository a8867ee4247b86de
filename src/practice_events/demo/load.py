"""Load the demo district into an empty store, and the demo's supervisor token.

``practice-events serve --demo`` calls these before it starts serving:

* :func:`load_demo` generates the demo history (:mod:`practice_events.demo.generator`)
  and ingests it through the one pipeline, in batches, with a progress bar:
  the same path as Kafka and HTTP input, so the store ends exactly as if the
  producers had sent it. The window ends yesterday in the network's time zone
  (so nothing lies in the future and the latest periods have data); its size
  comes from the settings ``demo_events`` and ``demo_days`` (default about
  90,000 events over 365 days: a district of about a quarter of the
  reference one, two institutes and eight stations, which loads and is
  projected within about a minute on a 2-core machine and still gives
  twelve months of trends).
* :func:`ensure_demo_token` issues, once, a district-supervisor token for the
  demo district and keeps its secret in a file beside the store (mode 0600),
  so that later starts show the same token. This is a convenience for a
  local demo only: whoever can read that file can read every unit's data.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import orjson
import structlog

from practice_events.demo.network import DISTRICT

if TYPE_CHECKING:
    from practice_events.application import PracticeEvents
    from practice_events.config import Settings
    from practice_events.ingest.pipeline import Pipeline

log = structlog.get_logger(__name__)

DEMO_SOURCE_CHANNEL = "demo"
"""The channel recorded for demo inputs (rejections name it)."""

DEMO_TOKEN_LIFETIME = timedelta(days=365)
"""How long the demo supervisor token stays valid."""

DEMO_UNIT = DISTRICT
"""The unit the demo token supervises: the district centre (it sees every unit)."""


@dataclass
class DemoLoad:
    """What :func:`load_demo` did."""

    start: date
    days: int
    scale: float
    inputs: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    events_stored: int = 0
    last_position: int = 0
    seconds: float = 0.0
    rejected_by_code: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "start": self.start.isoformat(),
            "days": self.days,
            "scale": round(self.scale, 4),
            "inputs": self.inputs,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "rejected_by_code": dict(sorted(self.rejected_by_code.items())),
            "events_stored": self.events_stored,
            "last_position": self.last_position,
            "seconds": round(self.seconds, 3),
        }


def demo_window(settings: Settings, today: date | None = None) -> tuple[date, int]:
    """Return the first day and length of the demo window: it ends yesterday (local time)."""
    local_today = today or datetime.now(settings.zone).date()
    days = settings.demo_days
    return local_today - timedelta(days=days), days


def store_is_empty(app: PracticeEvents) -> bool:
    """Tell whether the event store holds no event at all."""
    return app.last_position() == 0


def load_demo(
    settings: Settings,
    pipeline: Pipeline,
    *,
    progress: bool = True,
    start: date | None = None,
    days: int | None = None,
    events: int | None = None,
    seed: int | None = None,
) -> DemoLoad:
    """Generate the demo history and ingest it through ``pipeline``; return what happened.

    The window, size and seed default to the settings (:func:`demo_window`).
    Inputs go in batches of ``settings.batch_size``, each one transaction.
    The same arguments always give the same events, so loading twice stores
    them once.
    """
    from practice_events.demo.generator import Generation, relaxed_gc
    from practice_events.ingest.pipeline import RawInput
    from practice_events.progress import Progress

    if start is None or days is None:
        start, days = demo_window(settings)
    started = time.perf_counter()
    run = Generation(
        seed=settings.demo_seed if seed is None else seed,
        days=days,
        events=events or settings.demo_events,
        start=start,
    )
    summary = DemoLoad(start=run.plan.start, days=run.plan.days, scale=run.plan.scale)
    log.info(
        "demo_loading",
        start=summary.start.isoformat(),
        days=summary.days,
        scale=round(summary.scale, 3),
        estimate=run.estimate,
    )
    stream = run.events()
    dumps = orjson.dumps
    size = settings.batch_size
    rejected: dict[str, int] = {}
    with relaxed_gc(), Progress("demo", run.estimate, enabled=progress) as bar:
        while True:
            chunk = list(islice(stream, size))
            if not chunk:
                break
            first = summary.inputs
            batch = [
                RawInput(
                    payload=dumps(event),
                    channel=DEMO_SOURCE_CHANNEL,
                    position=f"demo:{first + offset}",
                )
                for offset, event in enumerate(chunk)
            ]
            result = pipeline.process(batch)
            summary.inputs += len(batch)
            summary.events_stored += result.events_stored
            summary.last_position = max(summary.last_position, result.last_position)
            for outcome in result.outcomes:
                if outcome.status == "accepted":
                    summary.accepted += 1
                elif outcome.status == "duplicate":
                    summary.duplicate += 1
                else:
                    code = outcome.code or "UNKNOWN"
                    rejected[code] = rejected.get(code, 0) + 1
            bar.advance(len(batch))
    summary.rejected = sum(rejected.values())
    summary.rejected_by_code = rejected
    summary.seconds = time.perf_counter() - started
    log.info("demo_loaded", **summary.as_dict())
    return summary


def _state_dir_and_stem(settings: Settings) -> tuple[Path, str]:
    """Beside a SQLite store (its file name without ``.db``), else ``var/practice-events``."""
    parsed = urlparse(settings.store)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        path = path[1:] if path.startswith("/") else path
        if path and path != ":memory:":
            db = Path(path)
            return db.parent, db.stem
    return Path("var"), "practice-events"


def demo_marker_path(settings: Settings) -> Path:
    """Where the demo's window and completion are recorded (``<store>.demo.json``)."""
    folder, stem = _state_dir_and_stem(settings)
    return folder / f"{stem}.demo.json"


def prepare_demo(
    settings: Settings,
    app: PracticeEvents,
    pipeline: Pipeline,
    *,
    progress: bool = True,
    today: date | None = None,
) -> DemoLoad | None:
    """Load the demo district if the store is empty, or finish a load that was interrupted.

    The window is recorded in :func:`demo_marker_path` before loading and
    marked complete after, so a load stopped half-way (Ctrl-C, SIGTERM) is
    resumed with the same window on the next start: what was stored already
    is recognised as duplicates. A store with other data and no unfinished
    demo is left alone. Returns what was loaded, or None.
    """
    marker = demo_marker_path(settings)
    recorded: dict[str, Any] = {}
    if marker.is_file():
        try:
            recorded = orjson.loads(marker.read_bytes())
        except orjson.JSONDecodeError:
            recorded = {}
    empty = store_is_empty(app)
    if empty:
        start, days = demo_window(settings, today)
    elif recorded and not recorded.get("complete"):
        start, days = date.fromisoformat(recorded["start"]), int(recorded["days"])
        log.info("demo_load_resumed", start=start.isoformat(), days=days)
    else:
        return None
    resume = not empty
    events = int(recorded["events"]) if resume else settings.demo_events
    seed = int(recorded["seed"]) if resume else settings.demo_seed
    state: dict[str, Any] = {
        "start": start.isoformat(),
        "days": days,
        "events": events,
        "seed": seed,
        "complete": False,
    }
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
    summary = load_demo(
        settings,
        pipeline,
        progress=progress,
        start=start,
        days=days,
        events=events,
        seed=seed,
    )
    state["complete"] = True
    state["loaded"] = summary.as_dict()
    marker.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
    return summary


def demo_token_path(settings: Settings) -> Path:
    """Where the demo token's secret is kept (``<store>.demo-token``, beside the store)."""
    folder, stem = _state_dir_and_stem(settings)
    return folder / f"{stem}.demo-token"


def ensure_demo_token(settings: Settings, app: PracticeEvents) -> str:
    """Return the demo district-supervisor token, issuing it (once) if needed.

    The secret is kept in :func:`demo_token_path` (mode 0600); a kept secret
    that the store no longer knows as active (the store was replaced, or the
    token revoked or expired) is replaced by a new one.
    """
    from practice_events.auth.tokens import token_store

    tokens = token_store(app)
    path = demo_token_path(settings)
    now = datetime.now(UTC)
    if path.is_file():
        secret = path.read_text(encoding="utf-8").strip()
        known = tokens.lookup(secret)
        if known is not None and known.status(now) == "active":
            return secret
        log.info("demo_token_replaced", reason="unknown, expired or revoked")
    issued = tokens.issue("district_supervisor", unit=DEMO_UNIT, lifetime=DEMO_TOKEN_LIFETIME)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(issued.secret + "\n")
    log.info("demo_token_issued", token_id=issued.token.token_id, unit=DEMO_UNIT, file=str(path))
    return issued.secret
