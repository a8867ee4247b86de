"""Data files of the domain: the built-in working-day calendar (``cn_public_holidays.toml``)."""
