"""Event store adapters: eventsourcing recorders for SQLite and PostgreSQL.

Both add, in the same transaction as the events, the idempotency keys of the
CloudEvents that produced them, the tracking positions of the inputs (Kafka
partitions, files) and the rejections of bad input. That one transaction is
what makes ingestion exactly-once in effect.
"""
