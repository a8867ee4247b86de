"""Scoring: assessment periods in the network's time zone, indicators, scoring models."""
