"""pytest fixtures for a real Kafka-protocol broker (Tansu), started by the suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka_broker import TansuBroker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """One Tansu broker for the whole session (memory storage, free port)."""
    log_path = Path(tmp_path_factory.mktemp("tansu")) / "tansu.log"
    broker = TansuBroker(log_path=log_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
