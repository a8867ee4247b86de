"""Kafka entry points of practice-events: the ingestion worker, its dead letters and its CLI.

This package imports :mod:`practice_events`; the core package never imports
it (it is found through the ``practice_events.cli`` entry point). The worker
feeds Kafka records into the one shared ingest pipeline and stores each
partition's offset in the event store, in the same transaction as the
events, so that a crash, a redelivery or a rebalance stores nothing twice.
"""
