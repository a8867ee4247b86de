"""The HTTP side of practice-events: ingestion now, the supervisors' query API later.

:func:`practice_events.api.app.create_app` builds the FastAPI application;
``practice-events serve`` runs it (see :mod:`practice_events.api.cli`).

Nothing is imported here on purpose: the CLI loads ``practice_events.api.cli``
for every command, and FastAPI should only be imported when a server starts.
"""
