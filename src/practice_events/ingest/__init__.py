"""The one ingest pipeline shared by Kafka, HTTP and ingest-file.

decode -> validate (contracts) -> dedupe by (source, id) -> apply to the
aggregate (domain rules) -> save new events with the input positions in one
transaction.
"""
