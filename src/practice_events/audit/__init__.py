"""Auditors' tools: integrity seals, histories, export/import, replay and certificates.

* :mod:`~practice_events.audit.integrity` seals the notification log with a
  hash chain (a follower that trails the log) and verifies it, with signed
  checkpoints a third party can keep;
* :mod:`~practice_events.audit.history` returns the ordered history of one
  aggregate with recorded time, business time, producer and actor;
* :mod:`~practice_events.audit.export` writes CloudEvents JSON Lines for a
  unit and a time range and imports them back through the ingest pipeline;
* :mod:`~practice_events.audit.replay` rebuilds projections as of a time or a
  position into a scratch view store (it imports ``projections`` lazily,
  inside its functions: see that module);
* :mod:`~practice_events.audit.certificate` issues reproducible volunteer
  service-record certificates;
* :mod:`~practice_events.audit.cli` adds the ``practice-events audit``
  commands through the ``practice_events.cli`` entry point.
"""
