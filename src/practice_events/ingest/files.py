"""``ingest-file``: put CloudEvents JSON Lines into the store without Kafka or HTTP.

Lines are read as bytes and go through the same pipeline as Kafka and HTTP
input, in batches. Refused lines are written to a rejections file (JSON
Lines: line number, code, reason and the original line) as well as to the
store's rejections table, so nothing is lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from practice_events.ingest.collector import relaxed_gc
from practice_events.ingest.pipeline import RawInput
from practice_events.ingest.processor import BatchProcessor
from practice_events.privacy.redact import redact_input
from practice_events.progress import Progress
from practice_events.shards.router import ShardedBatchResult


@dataclass
class IngestSummary:
    """Counts of what an ingest run did."""

    lines: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_by_code: Counter[str] = field(default_factory=Counter)
    events_stored: int = 0
    last_position: int = 0
    seconds: float = 0.0
    rejections_file: str | None = None
    shard_positions: dict[str, int] = field(default_factory=dict)
    """The log position each shard reached (sharded deployments only)."""

    @property
    def rate(self) -> float:
        """Input lines per second."""
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data."""
        return {
            "lines": self.lines,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "rejected_by_code": dict(sorted(self.rejected_by_code.items())),
            "events_stored": self.events_stored,
            "last_position": self.last_position,
            "seconds": round(self.seconds, 3),
            "lines_per_second": round(self.rate, 1),
            "rejections_file": self.rejections_file,
            **({"shard_positions": dict(self.shard_positions)} if self.shard_positions else {}),
        }


def _batches(stream: IO[bytes], name: str, size: int) -> Iterator[list[RawInput]]:
    batch: list[RawInput] = []
    for lineno, raw in enumerate(stream, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        batch.append(RawInput(payload=line, channel="file", position=f"{name}:{lineno}"))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ingest_file(
    pipeline: BatchProcessor,
    path: Path,
    *,
    batch_size: int = 1000,
    rejections_path: Path | None = None,
    progress: bool = True,
) -> IngestSummary:
    """Ingest a JSON Lines file of CloudEvents; return what happened."""
    import time

    summary = IngestSummary()
    total = None
    if progress and path.is_file():
        with path.open("rb") as counting:
            total = sum(1 for line in counting if line.strip())
    rejections_path = rejections_path or path.with_name(path.name + ".rejections.jsonl")
    rejections_out: IO[bytes] | None = None
    started = time.perf_counter()
    try:
        with (
            path.open("rb") as stream,
            Progress("ingest", total, enabled=progress) as bar,
            relaxed_gc(),
        ):
            for batch in _batches(stream, path.name, batch_size):
                result = pipeline.process(batch)
                summary.lines += len(batch)
                summary.events_stored += result.events_stored
                summary.last_position = result.last_position
                if isinstance(result, ShardedBatchResult):
                    summary.shard_positions.update(result.positions)
                for outcome in result.outcomes:
                    if outcome.status == "accepted":
                        summary.accepted += 1
                    elif outcome.status == "duplicate":
                        summary.duplicate += 1
                    else:
                        summary.rejected += 1
                        summary.rejected_by_code[outcome.code or "UNKNOWN"] += 1
                        if rejections_out is None:
                            rejections_out = rejections_path.open("wb")
                            summary.rejections_file = str(rejections_path)
                        assert outcome.input is not None
                        # Personal details are redacted here too (docs/privacy.md).
                        kept = redact_input(outcome.input.payload) or b""
                        original = kept.decode("utf-8", "replace")
                        rejections_out.write(
                            orjson.dumps(
                                {
                                    "line": int(str(outcome.input.position).rsplit(":", 1)[1]),
                                    "code": outcome.code,
                                    "reason": outcome.reason,
                                    "original": original,
                                }
                            )
                            + b"\n"
                        )
                bar.advance(len(batch))
    finally:
        if rejections_out is not None:
            rejections_out.close()
    summary.seconds = time.perf_counter() - started
    return summary
