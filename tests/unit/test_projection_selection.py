"""Which projections a runner process owns: ``--only``, ``--exclude`` and ``--plugin``."""

from __future__ import annotations

import pytest

from practice_events.config import Settings
from practice_events.errors import ConfigurationError
from projections.registry import all_projections, names_list, select

BUILT_IN = ["network", "closed_loop", "scorecards", "ledger", "needs", "meetings"]


def names(projections: list[object]) -> list[str]:
    """The NAMEs, in order."""
    return [p.NAME for p in projections]  # type: ignore[attr-defined]


class TestSelection:
    def test_every_projection_by_default(self) -> None:
        assert names(select(all_projections(Settings()))) == BUILT_IN

    def test_only_keeps_the_registry_order(self) -> None:
        chosen = select(all_projections(Settings()), only=names_list("ledger, network"))
        assert names(chosen) == ["network", "ledger"]

    def test_exclude_leaves_the_rest_for_another_process(self) -> None:
        every = all_projections(Settings())
        ledger_only = select(every, only=["ledger"])
        the_rest = select(every, exclude=["ledger"])
        assert names(ledger_only) + names(the_rest) == [
            "ledger",
            *(n for n in BUILT_IN if n != "ledger"),
        ]

    def test_refuses_an_unknown_name(self) -> None:
        with pytest.raises(ConfigurationError, match="'ledgr'"):
            select(all_projections(Settings()), only=["ledgr"])

    def test_refuses_a_selection_of_nothing(self) -> None:
        with pytest.raises(ConfigurationError, match="no projection to run"):
            select(all_projections(Settings()), only=["ledger"], exclude=["ledger"])


class TestPlugins:
    def test_a_plugin_module_adds_its_projections_after_the_built_in_ones(self) -> None:
        every = all_projections(Settings(), ["tests.projection_plugins"])
        assert names(every) == [*BUILT_IN, "test_slow", "test_failing", "test_tally"]

    def test_a_missing_plugin_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigurationError, match="cannot import"):
            all_projections(Settings(), ["tests.no_such_plugin"])

    def test_a_module_without_projections_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="defines no projection"):
            all_projections(Settings(), ["tests.factories_site"])
