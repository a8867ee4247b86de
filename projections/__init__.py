"""Projections: the read models supervisors and auditors use, built from the event log.

One module per projection, the batched runner (:mod:`projections.runner`)
and the view store (:mod:`projections.viewstore`). Imports
``practice_events``; the core package never imports this one.
"""
