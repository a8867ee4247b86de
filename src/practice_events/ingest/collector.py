"""The cyclic garbage collector, kept mostly out of the way of long ingestion runs.

Ingestion allocates many short-lived containers per input (parsed JSON,
validated models, domain events, rows) and creates almost no reference
cycles: reference counting frees nearly everything. With the default
thresholds (700, 10, 10) the cyclic collector still runs a young collection
every few inputs and, now and then, walks every live object: the imported
modules, the pydantic schemas and the pipeline's cache of tens of thousands
of aggregates. Measured on the demo district's mix that was about a fifth of
the pipeline's CPU time (docs/performance.md).

:func:`relaxed_gc` makes the collector's passes rare for as long as at
least one ingestion loop in the process runs (young collections every
:data:`YOUNG_THRESHOLD` net allocations instead of 700, older generations
rarer still). Nothing about what is collected changes, only how often the
collector looks: cycles are still collected, later. Nothing is frozen, so a
process that also serves HTTP (``consumers.service``) keeps collecting its
long-lived objects as before, only less often.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000
"""Net allocations of tracked objects between young collections (default 700)."""

_lock = threading.Lock()
_users = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Relax the collector while the block runs; restore it when the last such block ends.

    Reentrant and thread-safe (several workers may run in one process): the
    first block to enter saves and relaxes the thresholds, the last to leave
    restores them.
    """
    global _users, _saved  # noqa: PLW0603 - one collector per process
    with _lock:
        if _users == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(YOUNG_THRESHOLD, 20, 10)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
