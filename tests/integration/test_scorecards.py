"""Scorecards end to end: real events through the ingest pipeline, real views, hand-computed.

Each scenario sends CloudEvents through the one ingest pipeline into a real
store (a SQLite file and a PostgreSQL database: the ``store_url`` fixture),
runs every projection with the batched runner, and reads the scorecard.
The expected figures are worked out by hand in the comments.

The network used throughout (registered on 2 January 2023)::

    WLY (centre)
    ├── I1 (institute)
    │   ├── S1 (station)
    │   │   ├── H1, H2 (house-meeting sites)
    │   │   └── P1 (post)
    │   └── S2 (station)
    │       └── H3 (house-meeting site)
    └── I2 (institute)
        └── S3 (station)

Times are Beijing times (UTC+8); periods are reckoned in Asia/Shanghai.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings
from practice_events.contracts.assessment import EXAMPLE_MODEL, ScorecardPublished
from practice_events.errors import AuthorizationError, PracticeEventsError
from practice_events.ingest.pipeline import RawInput
from projections import scorecards as sc
from projections.registry import all_projections
from projections.runner import BatchedRunner, rebuild
from projections.scorecards import ScorecardSettings, ScorecardsProjection
from projections.viewstore import ViewStore, default_view_url
from tests import factories_finding as ff
from tests import factories_site as fs
from tests.harness import CST, cloud_event

pytestmark = pytest.mark.postgres

NOW = datetime(2024, 8, 15, 12, 0, tzinfo=CST)
"""Evaluation time of every scorecard here (all closed-loop clocks of H1 are settled)."""

REGISTERED_AT = datetime(2023, 1, 2, 9, 0, tzinfo=CST)

SITES: list[tuple[str, str, str | None]] = [
    ("WLY", "centre", None),
    ("I1", "institute", "WLY"),
    ("I2", "institute", "WLY"),
    ("S1", "station", "I1"),
    ("S2", "station", "I1"),
    ("S3", "station", "I2"),
    ("H1", "house_meeting_site", "S1"),
    ("H2", "house_meeting_site", "S1"),
    ("P1", "post", "S1"),
    ("H3", "house_meeting_site", "S2"),
]


def approx(value: float, **kw: Any) -> Any:
    """Scorecards report values rounded to 6 decimals: compare to that precision."""
    kw.setdefault("abs", 2e-6)
    return pytest.approx(value, **kw)


def at(month: int, day: int, hour: int = 9, minute: int = 0, year: int = 2024) -> datetime:
    """A Beijing time (month first: these scenarios span several months)."""
    return datetime(year, month, day, hour, minute, tzinfo=CST)


class World:
    """A store, the pipeline, every projection and a view store: one scenario's world."""

    def __init__(self, store_url: str, *, batch_size: int = 2000) -> None:
        self.settings = Settings(store=store_url)
        self.app = build_app(self.settings)
        self.pipeline = build_pipeline(self.settings, self.app)
        self.views = ViewStore(default_view_url(store_url))
        self.runner = BatchedRunner(
            self.app, self.views, all_projections(self.settings), batch_size=batch_size
        )
        self.pending: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    def send(self, event_type: str, subject: str, data: dict[str, Any], when: datetime) -> None:
        """Queue one CloudEvent (sent by :meth:`sync`)."""
        self.pending.append(cloud_event(event_type, subject, data, time=when))

    def sync(self) -> None:
        """Ingest what was queued (all must be accepted) and run every projection."""
        if self.pending:
            result = self.pipeline.process(
                [RawInput(payload=orjson.dumps(e)) for e in self.pending]
            )
            refused = [o.as_dict() for o in result.outcomes if o.status != "accepted"]
            assert not refused, refused
            self.sent.extend(self.pending)
            self.pending = []
        self.runner.catch_up()

    def card(self, unit: str, period: str, **kw: Any) -> dict[str, Any]:
        """The scorecard, evaluated at :data:`NOW`."""
        kw.setdefault("now", NOW)
        return sc.scorecard(self.views, unit, period, **kw)

    def close(self) -> None:
        """Release connections."""
        self.views.close()
        self.app.close()

    # -- builders --------------------------------------------------------------------------

    def network(self) -> None:
        """Register the network of the module docstring and the six-haves checklist."""
        for site_id, level, parent in SITES:
            data: dict[str, Any] = {"level": level, "name": f"{site_id} {level}"}
            if parent:
                data["parent_id"] = parent
            self.send(fs.REGISTERED, site_id, data, REGISTERED_AT)
        self.send(fs.CHECKLIST_PUBLISHED, "six-haves", fs.checklist(), REGISTERED_AT)
        for team in ("T1", "T2"):
            self.send(
                "practice.volunteer.team_registered.v1",
                team,
                {"site_id": "S3", "name": f"服务队{team}", "category": "home_repair"},
                REGISTERED_AT,
            )

    def model(self, data: dict[str, Any] | None = None, *, revised: bool = False) -> None:
        """Publish (or revise) scoring model ``wly-district``."""
        event_type = (
            "practice.assessment.scoring_model_revised.v1"
            if revised
            else "practice.assessment.scoring_model_published.v1"
        )
        self.send(event_type, "wly-district", data or copy.deepcopy(EXAMPLE_MODEL), at(1, 2))

    def activity(
        self,
        activity_id: str,
        site: str,
        starts: datetime,
        theme: str | None = None,
        *,
        complete: bool = True,
        cancel: bool = False,
    ) -> None:
        """Plan an activity (and complete or cancel it)."""
        data = fs.activity(
            site_id=site,
            theme_code=theme,
            starts_at=starts.isoformat(),
            ends_at=(starts + timedelta(hours=2)).isoformat(),
        )
        self.send(fs.PLANNED, activity_id, data, starts - timedelta(days=3))
        if cancel:
            self.send(fs.CANCELLED, activity_id, {"reason": "暴雨预警"}, starts - timedelta(days=1))
        elif complete:
            self.send(fs.COMPLETED, activity_id, fs.completion(), starts + timedelta(hours=3))

    def meeting(
        self,
        meeting_id: str,
        site: str,
        starts: datetime,
        steps: tuple[str, ...] = ("explain", "listen", "perform", "evaluate", "resolve"),
        concerns: tuple[str, ...] = (),
    ) -> None:
        """A house meeting with its steps; concerns are ``open``, ``spot`` or ``need``."""
        data = fs.meeting(
            site_id=site,
            started_at=starts.isoformat(),
            ended_at=(starts + timedelta(hours=1, minutes=30)).isoformat(),
        )
        after = starts + timedelta(hours=2)
        self.send(fs.HELD, meeting_id, data, after)
        for step in steps:
            self.send(fs.STEP, meeting_id, {"step": step, "summary": f"{step} done"}, after)
        for n, outcome in enumerate(concerns, start=1):
            concern_id = f"C{n}"
            self.send(fs.CONCERN_RAISED, meeting_id, fs.concern(concern_id), after)
            if outcome == "spot":
                self.send(
                    fs.CONCERN_RESOLVED,
                    meeting_id,
                    {"concern_id": concern_id, "resolution": "当场答复"},
                    after,
                )
            elif outcome == "need":
                self.send(
                    fs.CONCERN_CONVERTED,
                    meeting_id,
                    {"concern_id": concern_id, "to": "need", "target_id": f"{meeting_id}-N"},
                    after,
                )

    def need(
        self,
        need_id: str,
        site: str,
        accepted: datetime,
        *,
        assigned: datetime | None = None,
        claimed: bool = False,
        redispatched: datetime | None = None,
        delivered: datetime | None = None,
        closed: datetime | None = None,
        outcome: str = "fulfilled",
        rating: int | None = None,
    ) -> None:
        """A need's story: submitted an hour before acceptance, then as told."""
        p = "practice.need."
        self.send(
            p + "submitted.v1",
            need_id,
            {"site_id": site, "channel": "micro_wish", "category": "home_repair", "summary": "x"},
            accepted - timedelta(hours=1),
        )
        self.send(p + "accepted.v1", need_id, {"by": site}, accepted)
        if assigned is not None:
            if claimed:
                self.send(p + "listed_on_wish_wall.v1", need_id, {}, accepted)
                self.send(p + "claimed.v1", need_id, {"team_id": "T1"}, assigned)
            else:
                self.send(p + "dispatched.v1", need_id, {"team_id": "T1"}, assigned)
        if redispatched is not None:
            self.send(
                p + "redispatched.v1", need_id, {"team_id": "T2", "reason": "换队"}, redispatched
            )
        if delivered is not None:
            self.send(
                p + "service_delivered.v1", need_id, {"team_id": "T1", "hours": 1.0}, delivered
            )
        if closed is not None:
            data: dict[str, Any] = {"outcome": outcome}
            if outcome == "unfulfillable":
                data["reason"] = "超出服务范围"
            self.send(p + "closed.v1", need_id, data, closed)
        if rating is not None:
            assert closed is not None
            self.send(p + "rated.v1", need_id, {"rating": rating}, closed + timedelta(hours=1))


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    """A world with the network registered and the example scoring model published."""
    sc.clear_cache()
    w = World(store_url)
    w.network()
    w.model()
    w.sync()
    try:
        yield w
    finally:
        w.close()


def indicator(card: dict[str, Any], code: str) -> dict[str, Any]:
    """One indicator of a scorecard."""
    return next(i for i in card["indicators"] if i["code"] == code)


def figures(card: dict[str, Any], code: str) -> tuple[Any, Any, Any, Any]:
    """(status, value, numerator, denominator) of one indicator."""
    i = indicator(card, code)
    return i["status"], i["value"], i["numerator"], i["denominator"]


# --- site standard -----------------------------------------------------------------------


def assess(w: World, site: str, when: datetime, **ratings: str) -> None:
    """A six-haves assessment (all A unless rated otherwise)."""
    w.send(fs.ASSESSED, site, fs.assessment(ratings), when)


class TestSixHaves:
    """Weights: has_site .2, has_plan .15, has_team .2, has_project .15, has_rules .1,
    has_records .2; A/B/C/C# = 1/.66/.33/0."""

    @pytest.fixture
    def assessed(self, world: World) -> World:
        # S1: all A, at 23:30 on 31 March (Beijing) → 1.0, counts for March.
        assess(world, "S1", at(3, 31, 23, 30))
        # S2: has_plan B, has_rules C → .2 + .15×.66 + .2 + .15 + .1×.33 + .2 = 0.882
        assess(world, "S2", at(2, 10), has_plan="B", has_rules="C")
        # H1: all C# in January (0), then in March all A but has_records C
        #     → .8 + .2×.33 = 0.866 (the latest counts)
        assess(world, "H1", at(1, 5), **dict.fromkeys(_codes(), "C#"))
        assess(world, "H1", at(3, 10), has_records="C")
        # S3: assessed 20 March 2023, more than 365 days before the end of March 2024.
        assess(world, "S3", at(3, 20, year=2023))
        world.sync()
        return world

    def test_the_institute_averages_its_assessed_sites(self, assessed: World) -> None:
        card = assessed.card("I1", "2024-03")
        # (1.0 + 0.882 + 0.866) / 3 = 2.748 / 3 = 0.916
        status, value, numerator, denominator = figures(card, "six_haves_compliance")
        assert status == "ok"
        assert value == approx(0.916)
        assert numerator == approx(2.748)
        assert denominator == 3
        # I1, S1, S2, H1, H2, P1, H3 operate; 3 of the 7 were assessed
        assert indicator(card, "six_haves_compliance")["details"] == {
            "sites_in_scope": 7,
            "sites_assessed": 3,
        }

    def test_rolls_up_from_station_to_district(self, assessed: World) -> None:
        # S1 and H1: (1.0 + 0.866) / 2 = 0.933
        assert figures(assessed.card("S1", "2024-03"), "six_haves_compliance")[1] == (approx(0.933))
        # The district: S3's assessment is too old, so the same three as I1: 0.916
        assert figures(assessed.card("WLY", "2024-03"), "six_haves_compliance")[1] == (
            approx(0.916)
        )
        # I2: only S3, too old → insufficient data, not 0 %
        status, value, _, denominator = figures(
            assessed.card("I2", "2024-03"), "six_haves_compliance"
        )
        assert (status, value, denominator) == ("insufficient_data", None, 0)

    def test_the_window_ends_with_the_period(self, assessed: World) -> None:
        # February: S1's assessment (31 March) is not yet made; H1's latest is January's 0.
        # (0.882 + 0.0) / 2 = 0.441
        assert figures(assessed.card("I1", "2024-02"), "six_haves_compliance")[1:] == (
            approx(0.441),
            approx(0.882),
            2,
        )
        # 2023-Q2 (ends 1 July 2023): S3's assessment of 20 March 2023 is within 365 days → 1.0
        assert figures(assessed.card("I2", "2023-Q2"), "six_haves_compliance")[1] == 1.0


def _codes() -> list[str]:
    return [item["code"] for item in fs.SIX_HAVES]


# --- activities and themes -----------------------------------------------------------------


class TestThemesAndActivities:
    @pytest.fixture
    def active(self, world: World) -> World:
        w = world
        # Themes: the centre for January and March, institute I1 for February.
        w.send(
            fs.THEME_SET, "WLY:2024-01", fs.theme(month="2024-01", theme_code="new_year"), at(1, 1)
        )
        w.send(
            fs.THEME_SET,
            "I1:2024-02",
            fs.theme(unit_id="I1", month="2024-02", theme_code="spring"),
            at(1, 25),
        )
        w.send(fs.THEME_SET, "WLY:2024-03", fs.theme(), at(2, 25))
        w.activity("A1", "S1", at(1, 10), "new_year")  # on theme, January
        w.activity("A2", "S2", at(2, 5), "spring")  # on theme (I1's), February
        w.activity("A3", "S1", at(3, 31, 23, 30), "learn_from_lei_feng")  # March (edge)
        w.activity("A4", "S3", at(2, 10), "spring")  # S3 is under I2: not its theme
        w.activity("A5", "S2", at(4, 1, 0, 30), "learn_from_lei_feng")  # April (edge)
        w.activity("A6", "P1", at(2, 20))  # a post under S1, no theme: counts for S1
        w.activity("A7", "S2", at(3, 12), "learn_from_lei_feng", cancel=True)
        w.activity("A8", "S2", at(3, 15), "learn_from_lei_feng", complete=False)
        w.sync()
        return w

    def test_institute_quarter(self, active: World) -> None:
        card = active.card("I1", "2024-Q1")
        # Months with a theme for I1: Jan (WLY), Feb (I1), Mar (WLY) = 3; on theme: Jan (A1),
        # Feb (A2), Mar (A3) → 3 / 3
        assert figures(card, "theme_compliance") == ("ok", 1.0, 3, 3)
        # Assessed units I1, S1, S2 × 3 months = 9; with a completed activity: S1-Jan (A1),
        # S1-Feb (A6 at post P1), S1-Mar (A3), S2-Feb (A2) → 4 / 9
        assert figures(card, "activity_frequency") == ("ok", approx(4 / 9), 4, 9)

    def test_stations_see_the_themes_of_their_ancestors(self, active: World) -> None:
        s1 = active.card("S1", "2024-Q1")
        # S1: themes Jan, Feb, Mar; on theme Jan (A1), Mar (A3); A6 had no theme → 2 / 3
        assert figures(s1, "theme_compliance") == ("ok", approx(2 / 3), 2, 3)
        # S1 alone: 3 months, all with an activity → 3 / 3
        assert figures(s1, "activity_frequency") == ("ok", 1.0, 3, 3)
        s2 = active.card("S2", "2024-Q1")
        # S2: only February on theme (A2); A7 was cancelled, A8 never completed → 1 / 3
        assert figures(s2, "theme_compliance") == ("ok", approx(1 / 3), 1, 3)
        # S2: February only → 1 / 3
        assert figures(s2, "activity_frequency") == ("ok", approx(1 / 3), 1, 3)

    def test_a_theme_of_another_branch_does_not_count(self, active: World) -> None:
        card = active.card("I2", "2024-Q1")
        # I2's months with a theme: Jan and Mar (the centre's); I1's February theme is not
        # I2's. A4 (S3, February, "spring") is therefore on nobody's theme → 0 / 2, a real 0
        assert figures(card, "theme_compliance") == ("ok", 0.0, 0, 2)
        # I2 and S3 × 3 months = 6; S3 in February (A4) → 1 / 6
        assert figures(card, "activity_frequency") == ("ok", approx(1 / 6), 1, 6)

    def test_month_edges_in_beijing_time(self, active: World) -> None:
        # 23:30 on 31 March (A3) is March: S1's March has its activity and its theme.
        march = active.card("S1", "2024-03")
        assert figures(march, "activity_frequency") == ("ok", 1.0, 1, 1)
        assert figures(march, "theme_compliance") == ("ok", 1.0, 1, 1)
        # 00:30 on 1 April (A5) is April: S2 has nothing completed in March, one in April.
        assert figures(active.card("S2", "2024-03"), "activity_frequency")[1] == 0.0
        assert figures(active.card("S2", "2024-04"), "activity_frequency")[1] == 1.0
        # April has no theme at all: compliance is insufficient data, not 0 % or 100 %
        assert figures(active.card("S2", "2024-04"), "theme_compliance")[0] == ("insufficient_data")

    def test_a_revised_theme_code_is_the_one_that_counts(self, active: World) -> None:
        active.send(fs.THEME_REVISED, "WLY:2024-03", {"theme_code": "lei_feng_2024"}, at(3, 20))
        active.sync()
        # A3 carries the old code: March is no longer on theme for S1 → 0 / 1
        assert figures(active.card("S1", "2024-03"), "theme_compliance") == ("ok", 0.0, 0, 1)


# --- house meetings ------------------------------------------------------------------------


class TestHouseMeetings:
    @pytest.fixture
    def met(self, world: World) -> World:
        w = world
        # M1 at H1: all five steps; concerns: one resolved on the spot, one converted, one open
        w.meeting("M1", "H1", at(3, 8, 19, 30), concerns=("spot", "need", "open"))
        # M2 at H1: four steps (no evaluate)
        w.meeting("M2", "H1", at(3, 20, 19), steps=("explain", "listen", "perform", "resolve"))
        # M3 at H3: starts 23:30 on 31 March → March; one open concern
        w.meeting("M3", "H3", at(3, 31, 23, 30), concerns=("open",))
        # M4 at H2: 00:30 on 1 April → April; M5 at H2 in February
        w.meeting("M4", "H2", at(4, 1, 0, 30))
        w.meeting("M5", "H2", at(2, 28, 19))
        w.sync()
        return w

    def test_station_march(self, met: World) -> None:
        card = met.card("S1", "2024-03")
        # House-meeting sites of S1: H1, H2; with a March meeting: H1 → 1 / 2
        assert figures(card, "meeting_coverage") == ("ok", 0.5, 1, 2)
        # Meetings M1 (complete), M2 (4 steps): 1 of 2, below the model's minimum of 3
        assert figures(card, "five_step_completeness") == ("insufficient_data", None, 1, 2)

    def test_institute_march_rolls_up_the_stations(self, met: World) -> None:
        card = met.card("I1", "2024-03")
        # H1, H2, H3; with a March meeting: H1 (M1, M2), H3 (M3 at 23:30 on the 31st) → 2 / 3
        assert figures(card, "meeting_coverage") == ("ok", approx(2 / 3), 2, 3)
        # M1, M2, M3: complete M1 and M3 → 2 / 3 (3 meetings meet the minimum of 3)
        assert figures(card, "five_step_completeness") == ("ok", approx(2 / 3), 2, 3)
        # Concerns: M1 three (1 on the spot, 1 converted), M3 one (open) → 2 / 4
        assert figures(card, "concern_settlement") == ("ok", 0.5, 2, 4)
        assert indicator(card, "concern_settlement")["in_model"] is False

    def test_april_and_february(self, met: World) -> None:
        # April: only H2 (M4 at 00:30 on 1 April) → S1 1 / 2
        assert figures(met.card("S1", "2024-04"), "meeting_coverage") == ("ok", 0.5, 1, 2)
        # Q1 for S1: H1 (March) and H2 (February) → 2 / 2; meetings M1, M2, M5: M1 and M5
        # complete → 2 / 3
        q1 = met.card("S1", "2024-Q1")
        assert figures(q1, "meeting_coverage") == ("ok", 1.0, 2, 2)
        assert figures(q1, "five_step_completeness") == ("ok", approx(2 / 3), 2, 3)

    def test_a_site_deactivated_before_the_period_leaves_the_denominator(self, met: World) -> None:
        met.send(fs.DEACTIVATED, "H2", {"reason": "并入H1"}, at(3, 1, 0, 10))
        met.sync()
        # March: H2 was deactivated on 1 March, inside the month: it still counts → 1 / 2
        assert figures(met.card("S1", "2024-03"), "meeting_coverage")[2:] == (1, 2)
        # April: H2 no longer operates; H1 had no April meeting → 0 / 1
        assert figures(met.card("S1", "2024-04"), "meeting_coverage") == ("ok", 0.0, 0, 1)


# --- needs ---------------------------------------------------------------------------------


class TestNeeds:
    @pytest.fixture
    def served(self, world: World) -> World:
        w = world
        # Accepted in March at S1, with the hours from acceptance to first delivery:
        w.need(
            "N1",
            "S1",
            at(3, 1, 10),
            assigned=at(3, 1, 11),
            delivered=at(3, 2, 10),
            closed=at(3, 3),
            rating=5,
        )  # 24 h
        w.need(
            "N2",
            "S1",
            at(3, 5, 10),
            assigned=at(3, 5, 11),
            redispatched=at(3, 5, 12),
            delivered=at(3, 5, 16),
            closed=at(3, 6),
            rating=4,
        )  # 6 h, re-dispatched
        w.need(
            "N3",
            "S1",
            at(3, 10, 10),
            assigned=at(3, 10, 11),
            delivered=at(3, 12, 10),
            closed=at(3, 13),
            rating=2,
        )  # 48 h
        w.need(
            "N4", "S1", at(3, 15, 10), assigned=at(3, 15, 11), closed=at(3, 16), outcome="withdrawn"
        )
        w.need(
            "N5",
            "S1",
            at(3, 20, 10),
            assigned=at(3, 20, 11),
            delivered=at(3, 21, 22),
            closed=at(4, 25),
        )  # 36 h; closed fulfilled within 30 days after March
        w.need(
            "N6",
            "S1",
            at(3, 31, 23, 30),
            assigned=at(4, 1, 9),
            claimed=True,
            delivered=at(4, 2, 9, 30),
            closed=at(5, 5),
        )  # 34 h; closed too late
        w.need("N7", "S1", at(3, 25, 10), closed=at(3, 28), outcome="unfulfillable")
        w.need(
            "N9",
            "S1",
            at(3, 26, 10),
            assigned=at(3, 26, 11),
            delivered=at(3, 26, 12),
            closed=at(3, 27),
            rating=5,
        )  # 2 h
        # N8 rejected: never accepted
        w.send(
            "practice.need.submitted.v1",
            "N8",
            {"site_id": "S1", "channel": "app", "category": "legal", "summary": "x"},
            at(3, 26),
        )
        w.send(
            "practice.need.rejected.v1",
            "N8",
            {"reason": "不在服务范围", "visible_to_requester": True},
            at(3, 27),
        )
        w.sync()
        return w

    def test_fulfilment_over_needs_accepted_in_the_period(self, served: World) -> None:
        card = served.card("S1", "2024-03")
        # Accepted in March: N1-N7 and N9 = 8 (N6 at 23:30 on the 31st); N4 withdrawn → 7;
        # fulfilled by 1 May (30 days after March): N1, N2, N3, N5, N9 = 5 (N6 closed 5 May)
        # → 5 / 7
        assert figures(card, "need_fulfilment") == ("ok", approx(5 / 7), 5, 7)
        assert indicator(card, "need_fulfilment")["details"] == {"accepted": 8, "withdrawn": 1}

    def test_time_to_serve_median_and_p90(self, served: World) -> None:
        card = served.card("S1", "2024-03")
        # First delivered in March: N1 24, N2 6, N3 48, N5 36, N9 2 → sorted 2, 6, 24, 36, 48
        # median 24 h; p90 rank ⌈4.5⌉ = 5 → 48 h; mean 116 / 5 = 23.2 h
        served_figure = indicator(card, "time_to_serve")
        assert served_figure["status"] == "ok"
        assert served_figure["value"] == approx(24)
        assert served_figure["denominator"] == 5
        assert served_figure["details"]["p90"] == approx(48)
        assert served_figure["details"]["mean"] == approx(23.2)
        # normalised: 1 − 24 / 168 = 0.857143
        assert served_figure["normalised"] == approx(1 - 24 / 168)
        # April: only N6 (34 h) → 1 < 5: insufficient
        assert figures(served.card("S1", "2024-04"), "time_to_serve")[:2] == (
            "insufficient_data",
            None,
        )

    def test_redispatch_and_satisfaction(self, served: World) -> None:
        card = served.card("S1", "2024-03")
        # First assigned in March: N1, N2, N3, N4, N5, N9 = 6 (N6 claimed 1 April, N7 never);
        # re-dispatched: N2 → 1 / 6
        assert figures(card, "redispatch_rate") == ("ok", approx(1 / 6), 1, 6)
        # Ratings in March: N1 5, N2 4, N3 2, N9 5 → 3 good of 4, below the minimum of 10
        assert figures(card, "satisfaction") == ("insufficient_data", None, 3, 4)

    def test_satisfaction_needs_ten_ratings(self, world: World) -> None:
        ratings = [5, 5, 4, 4, 4, 3, 5, 2, 4, 5]
        for n, value in enumerate(ratings[:9], start=1):
            day = at(6, n, 10)
            world.need(
                f"R{n}",
                "S2",
                day,
                assigned=day + timedelta(hours=1),
                delivered=day + timedelta(hours=2),
                closed=day + timedelta(hours=3),
                rating=value,
            )
        world.sync()
        # Nine ratings: insufficient, whatever they say
        assert figures(world.card("S2", "2024-06"), "satisfaction") == (
            "insufficient_data",
            None,
            7,
            9,
        )
        day = at(6, 20, 10)
        world.need(
            "R10",
            "S2",
            day,
            assigned=day + timedelta(hours=1),
            delivered=day + timedelta(hours=2),
            closed=day + timedelta(hours=3),
            rating=5,
        )
        world.sync()
        # Ten ratings, 4 or 5 in 5,5,4,4,4,5,4,5 = 8 → 0.8; mean 41 / 10 = 4.1
        card = world.card("S2", "2024-06")
        assert figures(card, "satisfaction") == ("ok", 0.8, 8, 10)
        assert indicator(card, "satisfaction")["details"]["mean"] == approx(4.1)

    def test_the_district_rolls_up_needs(self, served: World) -> None:
        # All needs are at S1: the district sees the same figures.
        assert figures(served.card("WLY", "2024-03"), "need_fulfilment")[2:] == (5, 7)
        # I2 has none: insufficient, with a denominator of 0
        assert figures(served.card("I2", "2024-03"), "need_fulfilment") == (
            "insufficient_data",
            None,
            0,
            0,
        )


# --- volunteers ----------------------------------------------------------------------------

V = "practice.volunteer."
A = "practice.attendance."


class TestVolunteers:
    @pytest.fixture
    def serving(self, world: World) -> World:
        w = world
        for number, site, when in (
            ("V1", "S1", at(12, 1, year=2023)),
            ("V2", "S1", at(12, 1, year=2023)),
            ("V3", "S1", at(12, 1, year=2023)),
            ("V4", "S1", at(4, 5)),  # registered after March
            ("V5", "S2", at(12, 1, year=2023)),  # another station
        ):
            w.send(V + "registered.v1", number, {"home_site_id": site}, when)
        for number in ("O1", "O2"):
            w.send(
                V + "registered.v1",
                number,
                {"home_site_id": "S1", "is_official": True, "home_unit_id": "DEPT-FIN"},
                at(12, 1, year=2023),
            )
        # V1: 09:00-12:00 on 10 March (3 h), approved, then corrected by −0.5 h
        self.session(w, "V1", "s1", at(3, 10, 9), at(3, 10, 12))
        w.send(
            A + "hours_corrected.v1",
            "V1",
            {"session_id": "s1", "delta_hours": -0.5, "reason": "往返时间", "approver": "ST"},
            at(3, 12),
        )
        # V1: 22:00 on 31 March to 01:30 on 1 April: 3.5 h of March service (local day of the
        # check-in), approved
        self.session(w, "V1", "s2", at(3, 31, 22), at(4, 1, 1, 30))
        # V2: 2 h on 15 January (inside the 90 days before 1 April), approved
        self.session(w, "V2", "s1", at(1, 15, 9), at(1, 15, 11))
        # V2: 2 h on 20 March, rejected
        self.session(w, "V2", "s2", at(3, 20, 9), at(3, 20, 11), approve=False)
        # V3: 2 h on 20 December 2023: outside the 90 days
        self.session(w, "V3", "s1", at(12, 20, 9, year=2023), at(12, 20, 11, year=2023))
        # V5 at S2: 4 h in March
        self.session(w, "V5", "s1", at(3, 5, 9), at(3, 5, 13))
        # Officials: O1 reports to a community and a post, O2 only to a community
        w.send(V + "official_reported_to_community.v1", "O1", {"community_site_id": "S1"}, at(2, 1))
        w.send(V + "official_reported_to_post.v1", "O1", {"post_site_id": "P1"}, at(2, 2))
        w.send(V + "official_reported_to_community.v1", "O2", {"community_site_id": "S1"}, at(2, 3))
        w.sync()
        return w

    @staticmethod
    def session(
        w: World,
        number: str,
        session: str,
        start: datetime,
        end: datetime,
        *,
        approve: bool = True,
    ) -> None:
        w.send(
            A + "checked_in.v1",
            number,
            {"session_id": session, "site_id": "S1", "method": "qr"},
            start,
        )
        w.send(A + "checked_out.v1", number, {"session_id": session, "method": "qr"}, end)
        if approve:
            w.send(
                A + "hours_approved.v1",
                number,
                {"session_id": session, "approver": "ST"},
                end + timedelta(hours=1),
            )
        else:
            w.send(
                A + "hours_rejected.v1",
                number,
                {"session_id": session, "reason": "地点不符", "approver": "ST"},
                end + timedelta(hours=1),
            )

    def test_station_march(self, serving: World) -> None:
        card = serving.card("S1", "2024-03")
        # Registered at S1 before 1 April: V1, V2, V3, O1, O2 = 5 (V4 registered 5 April).
        # Active (approved service from 2 January to 31 March): V1 (March), V2 (15 January)
        # → 2 / 5
        assert figures(card, "active_volunteers") == ("ok", 0.4, 2, 5)
        # Approved March hours of S1's volunteers: V1 3 − 0.5 + 3.5 = 6; V2's March session
        # was rejected → 6 h over 2 active = 3 h; target 8 h for one month
        hours = indicator(card, "hours_per_active")
        assert (hours["value"], hours["numerator"], hours["denominator"]) == (3.0, 6.0, 2)
        assert hours["details"]["target"] == 8.0
        assert hours["normalised"] == approx(3 / 8)
        # Officials: O1 reported to both, O2 to a community only → 1 / 2 (below the model's
        # floor of 0.6, so it scores 0)
        assert figures(card, "dual_checkin_rate") == ("ok", 0.5, 1, 2)
        assert indicator(card, "dual_checkin_rate")["score"] == 0

    def test_institute_and_january(self, serving: World) -> None:
        card = serving.card("I1", "2024-03")
        # I1 adds V5 (S2): registered 6, active V1, V2, V5 = 3 → 0.5; hours 6 + 4 = 10 over 3
        assert figures(card, "active_volunteers") == ("ok", 0.5, 3, 6)
        assert figures(card, "hours_per_active")[1:] == (approx(10 / 3), 10.0, 3)
        # January for S1: the 90 days before 1 February start 3 November 2023: V3 (20 Dec) and
        # V2 (15 Jan) are active → 2 / 5; neither official had reported yet → 0 / 2
        january = serving.card("S1", "2024-01")
        assert figures(january, "active_volunteers") == ("ok", 0.4, 2, 5)
        assert figures(january, "dual_checkin_rate") == ("ok", 0.0, 0, 2)


# --- closed loop ---------------------------------------------------------------------------


class TestClosedLoop:
    """Findings at S1 (normal severity: acknowledge in 2 working days, rectify in 15).

    March 2024 has no public holiday: working days are Monday to Friday.
    """

    @pytest.fixture
    def looped(self, world: World) -> World:
        w = world

        def record(subject: str, when: datetime, **kw: Any) -> None:
            w.send(
                ff.RECORDED,
                subject,
                ff.recorded(site_id="S1", responsible_unit_id="S1", **kw),
                when,
            )

        verifier = {"verifier_id": "C-INSP", "verifier_unit_id": "WLY", "method": "onsite"}
        # F1: fed back Mon 4 March 10:00 → ack due end of Wed 6 March, rectify due end of Mon
        #     25 March (15 working days). Acknowledged 5 March (on time), reported 12 March,
        #     verified 13 March: rectified on time, first pass.
        record("F1", at(3, 4, 9))
        w.send(ff.FED_BACK, "F1", ff.fed_back(), at(3, 4, 10))
        w.send(ff.ACKNOWLEDGED, "F1", ff.acknowledged(), at(3, 5, 9))
        w.send(ff.PLAN, "F1", ff.plan(), at(3, 5, 15))
        w.send(ff.REPORTED, "F1", ff.report(), at(3, 12, 10))
        w.send(ff.PASSED, "F1", verifier, at(3, 13, 10))
        # F2: fed back 4 March, acknowledged Fri 8 March (late), reported 27 March (after the
        #     25 March due time), verified 28 March: rectification late.
        record("F2", at(3, 4, 9))
        w.send(ff.FED_BACK, "F2", ff.fed_back(), at(3, 4, 10))
        w.send(ff.ACKNOWLEDGED, "F2", ff.acknowledged(), at(3, 8, 9))
        w.send(ff.PLAN, "F2", ff.plan(), at(3, 8, 15))
        w.send(ff.REPORTED, "F2", ff.report(), at(3, 27, 10))
        w.send(ff.PASSED, "F2", verifier, at(3, 28, 10))
        # F3: fed back Mon 11 March → ack due end of 13 March; acknowledged 12 March (on time);
        #     rectify due end of Mon 1 April: the April cohort.
        record("F3", at(3, 11, 9))
        w.send(ff.FED_BACK, "F3", ff.fed_back(), at(3, 11, 10))
        w.send(ff.ACKNOWLEDGED, "F3", ff.acknowledged(), at(3, 12, 9))
        # F4: fed back 5 March, returned by S1 the same day (a return in March, against S1),
        #     then ruled to S2 on 6 March: S1's acknowledgement clock is superseded.
        record("F4", at(3, 5, 9))
        w.send(ff.FED_BACK, "F4", ff.fed_back(), at(3, 5, 10))
        w.send(ff.RETURNED, "F4", ff.returned(), at(3, 5, 15))
        w.send(ff.REASSIGNED, "F4", ff.reassigned(to_unit_id="S2"), at(3, 6, 10))
        # F5: fed back Fri 1 March → ack due end of Tue 5 March; never acknowledged: late, and
        #     overdue at the end of March.
        record("F5", at(3, 1, 9))
        w.send(ff.FED_BACK, "F5", ff.fed_back(), at(3, 1, 10))
        w.sync()
        return w

    def test_station_march(self, looped: World) -> None:
        card = looped.card("S1", "2024-03")
        # Acknowledgement cohort (fed back to S1 in March): F1 on time, F2 late, F3 on time,
        # F5 late (due 5 March, never met); F4's clock was superseded by the ruling → 2 / 4
        assert figures(card, "ack_on_time") == ("ok", 0.5, 2, 4)
        # Rectification due in March: F1 (25 March, verified: on time), F2 (25 March, late),
        # F5 (due end of 22 March: 15 working days from 1 March; never acknowledged: late);
        # F3 is due 1 April → 1 / 3
        assert figures(card, "rectify_on_time") == ("ok", approx(1 / 3), 1, 3)
        # Closed as fixed in March: F1, F2, neither reopened → 2 / 2, below the minimum of 3
        assert figures(card, "first_pass_verification") == ("insufficient_data", None, 2, 2)
        # Returns: F4 by S1 in March, over S1's feed-backs in March (F1, F2, F3, F4, F5 = 5)
        # → 1 / 5
        assert figures(card, "return_rate") == ("ok", 0.2, 1, 5)
        # Reopens: none, over closures in February and March (F1, F2 = 2): below 3
        assert figures(card, "reopen_rate") == ("insufficient_data", None, 0, 2)
        # Backlog at the end of March: F3 (rectifying, due 1 April: not overdue) and F5
        # (acknowledgement overdue since 5 March) are open → 1 overdue of 2 open
        backlog = indicator(card, "overdue_backlog")
        assert (backlog["status"], backlog["value"]) == ("ok", 1.0)
        assert (backlog["numerator"], backlog["denominator"]) == (1, 2)
        # normalised: 1 − 1/2 = 0.5
        assert backlog["normalised"] == 0.5

    def test_a_reopen_counts_against_the_closures_of_two_periods(self, looped: World) -> None:
        looped.send(ff.REOPENED, "F1", ff.reopened(), at(4, 2, 10))
        looped.sync()
        april = looped.card("S1", "2024-04")
        # Reopens in April: F1; closures in March and April: F1, F2 → 1 / 2, below 3
        assert figures(april, "reopen_rate") == ("insufficient_data", None, 1, 2)
        # March is unchanged by an April reopen (F1 was closed first pass in March)
        assert figures(looped.card("S1", "2024-03"), "first_pass_verification")[2:] == (2, 2)

    def test_holidays_and_make_up_days_move_the_due_time(self, world: World) -> None:
        w = world
        # Qingming 2024: 4-6 April off, Sunday 7 April a make-up working day.
        # G1 fed back Tue 2 April 10:00 → 2 working days: Wed 3, Sun 7 → due end of 7 April;
        #    acknowledged on the make-up Sunday: on time.
        # G2 fed back Wed 3 April → Sun 7, Mon 8 → due end of 8 April; acknowledged Monday 8
        #    April: on time (without the holiday it would have been due Friday 5 April).
        # G3 fed back Tue 2 April → due end of Sun 7 April; acknowledged Mon 8 April: late.
        for subject, fed, acked in (
            ("G1", at(4, 2, 10), at(4, 7, 16)),
            ("G2", at(4, 3, 10), at(4, 8, 16)),
            ("G3", at(4, 2, 10), at(4, 8, 9)),
        ):
            w.send(
                ff.RECORDED,
                subject,
                ff.recorded(site_id="S2", responsible_unit_id="S2"),
                fed - timedelta(hours=1),
            )
            w.send(ff.FED_BACK, subject, ff.fed_back(), fed)
            w.send(ff.ACKNOWLEDGED, subject, ff.acknowledged(), acked)
        w.sync()
        assert figures(w.card("S2", "2024-04"), "ack_on_time") == ("ok", approx(2 / 3), 2, 3)

    def test_a_failed_verification_starts_a_second_cycle(self, looped: World) -> None:
        w = looped
        verifier = {"verifier_id": "C-INSP", "verifier_unit_id": "WLY", "method": "onsite"}
        failed = {**verifier, "reason": "仍缺2月台账"}
        failed.pop("method")
        # F3: plan 12 March, reported 14 March (cycle 1, due 1 April: met), verification fails
        # on 15 March → reopened, cycle 2 with half the budget: 7 working days from 15 March →
        # due end of 26 March; reported 20 March, verified 21 March (on time, not first pass).
        w.send(ff.PLAN, "F3", ff.plan(), at(3, 12, 15))
        w.send(ff.REPORTED, "F3", ff.report(), at(3, 14, 10))
        w.send(ff.FAILED, "F3", failed, at(3, 15, 10))
        w.send(ff.REPORTED, "F3", ff.report(), at(3, 20, 10))
        w.send(ff.PASSED, "F3", verifier, at(3, 21, 10))
        w.sync()
        card = w.card("S1", "2024-03")
        # Passed in March: F1, F2 (cycle 1), F3 (cycle 2) → first pass 2 / 3
        assert figures(card, "first_pass_verification") == ("ok", approx(2 / 3), 2, 3)
        # Reopens in March: F3 (derived from the failure); closures Feb-Mar: 3 → 1 / 3
        assert figures(card, "reopen_rate") == ("ok", approx(1 / 3), 1, 3)
        # Rectification due in March: F1 on time, F2 late, F5 late, F3 cycle 2 on time
        # (F3's cycle-1 clock, due 1 April, is April's) → 2 / 4
        assert figures(card, "rectify_on_time") == ("ok", 0.5, 2, 4)
        # Backlog: only F5 open (overdue) → 1 of 1
        assert figures(card, "overdue_backlog") == ("ok", 1.0, 1, 1)
        # The same counts as the closed-loop view's own summary
        from projections.closed_loop import closed_loop_summary

        theirs = closed_loop_summary(w.views, "S1", "2024-03", now=NOW)["indicators"]
        ours = {i["code"]: i for i in card["indicators"]}
        pairs = {
            "ack_on_time": theirs["acknowledged_on_time"],
            "rectify_on_time": theirs["rectified_on_time"],
            "first_pass_verification": theirs["verified_first_pass"],
            "reopen_rate": theirs["reopened"]["rate"],
            "return_rate": theirs["returned"]["rate"],
        }
        for code, figure in pairs.items():
            assert (ours[code]["numerator"], ours[code]["denominator"]) == (
                figure["numerator"],
                figure["denominator"],
            ), code
        assert ours["overdue_backlog"]["value"] == theirs["overdue_backlog"]["value"]

    def test_a_voided_finding_counts_nowhere(self, looped: World) -> None:
        looped.send(ff.VOIDED, "F5", ff.voided(), at(3, 20))
        looped.sync()
        card = looped.card("S1", "2024-03")
        # Without F5: acknowledgement 2 on time of F1, F2, F3 → 2 / 3
        assert figures(card, "ack_on_time") == ("ok", approx(2 / 3), 2, 3)
        # Backlog: only F3 open, not overdue → 0 of 1
        assert figures(card, "overdue_backlog") == ("ok", 0.0, 0, 1)


# --- reporting -----------------------------------------------------------------------------

P = "practice.assessment."


def open_period(w: World, unit: str, period: str, when: datetime) -> None:
    """Open the unit's assessment period (the aggregate that carries reports)."""
    kind = {"Q": "quarter", "H": "half_year"}.get(period[5:6], "month")
    if len(period) == 4:
        kind = "year"
    w.send(
        P + "period_opened.v1",
        f"{unit}:{period}",
        {"unit_id": unit, "period": period, "kind": kind},
        when,
    )


class TestReporting:
    @pytest.fixture
    def reported(self, world: World) -> World:
        w = world
        for period in ("2024-01", "2024-02", "2024-03", "2024-04", "2024-Q1", "2024-H1"):
            open_period(w, "I1", period, at(1, 1, 0, 10))
        # January's bulletin at 23:30 on 5 February (Beijing): on time (day 5)
        w.send(
            P + "bulletin_published.v1",
            "I1:2024-01",
            {"document_ref": "TB-01", "as_of_position": 10},
            at(2, 5, 23, 30),
        )
        # February's at 00:30 on 6 March: late
        w.send(
            P + "bulletin_published.v1",
            "I1:2024-02",
            {"document_ref": "TB-02", "as_of_position": 20},
            at(3, 6, 0, 30),
        )
        # March's on 3 April, corrected on 20 April: the first publication counts → on time
        w.send(
            P + "bulletin_published.v1",
            "I1:2024-03",
            {"document_ref": "TB-03", "as_of_position": 30},
            at(4, 3),
        )
        w.send(
            P + "bulletin_published.v1",
            "I1:2024-03",
            {"document_ref": "TB-03b", "as_of_position": 31, "correction_of": "TB-03"},
            at(4, 20),
        )
        # Q1 reviewed on 10 April; the half-year summary on 5 July
        w.send(
            P + "quarterly_review_held.v1",
            "I1:2024-Q1",
            {"attendees_count": 20, "ranked_units": ["S1", "S2"]},
            at(4, 10),
        )
        w.send(
            P + "half_year_summary_published.v1", "I1:2024-H1", {"document_ref": "ZJ-H1"}, at(7, 5)
        )
        w.sync()
        return w

    def test_a_quarter(self, reported: World) -> None:
        card = reported.card("I1", "2024-Q1")
        # Bulletins on time: January, March → 2 / 3
        assert figures(card, "bulletin_on_time") == ("ok", approx(2 / 3), 2, 3)
        assert indicator(card, "bulletin_on_time")["details"]["months_late_or_missing"] == [
            "2024-02"
        ]
        # One quarter, reviewed → 1 / 1; no half-year inside a quarter → insufficient
        assert figures(card, "quarterly_review") == ("ok", 1.0, 1, 1)
        assert figures(card, "half_year_summary")[0] == "insufficient_data"

    def test_a_half_year_and_a_year(self, reported: World) -> None:
        half = reported.card("I1", "2024-H1")
        # Six months, on time: January and March → 2 / 6; quarters Q1, Q2: Q1 reviewed → 1 / 2;
        # the half-year summarised → 1 / 1
        assert figures(half, "bulletin_on_time")[1:] == (approx(2 / 6), 2, 6)
        assert figures(half, "quarterly_review")[1:] == (0.5, 1, 2)
        assert figures(half, "half_year_summary")[1:] == (1.0, 1, 1)
        year = reported.card("I1", "2024")
        # 2 / 12 months, 1 / 4 quarters, 1 / 2 half-years
        assert figures(year, "bulletin_on_time")[2:] == (2, 12)
        assert figures(year, "quarterly_review")[2:] == (1, 4)
        assert figures(year, "half_year_summary")[2:] == (1, 2)

    def test_the_bulletin_day_is_a_setting(self, reported: World) -> None:
        card = reported.card("I1", "2024-Q1", settings=ScorecardSettings(bulletin_day=6))
        # By day 6, February's bulletin (00:30 on 6 March) is on time too → 3 / 3
        assert figures(card, "bulletin_on_time")[1:] == (1.0, 3, 3)

    def test_reporting_is_the_units_own(self, reported: World) -> None:
        # S1 published nothing: 0 / 3 bulletins in Q1 (a real 0: every month was due)
        assert figures(reported.card("S1", "2024-Q1"), "bulletin_on_time") == ("ok", 0.0, 0, 3)


# --- composite, models, ranks ----------------------------------------------------------------

SMALL_MODEL: dict[str, Any] = {
    "version": 1,
    "title": "Activities and bulletins",
    "effective_from": "2024-01",
    "area_weights": {"activities": 60, "reporting": 40},
    "indicators": [
        {"code": "theme_compliance", "area": "activities", "weight": 30},
        {"code": "activity_frequency", "area": "activities", "weight": 30},
        {"code": "bulletin_on_time", "area": "reporting", "weight": 40},
    ],
}
"""A model small enough to compute by hand: 60 points of activities, 40 of bulletins."""


@pytest.fixture
def small(store_url: str) -> Iterator[World]:
    """The network, the small model, activities and bulletins of Q1 2024."""
    sc.clear_cache()
    w = World(store_url)
    w.network()
    w.send(P + "scoring_model_published.v1", "small", copy.deepcopy(SMALL_MODEL), at(1, 2))
    w.send(fs.THEME_SET, "WLY:2024-01", fs.theme(month="2024-01", theme_code="new_year"), at(1, 1))
    w.send(fs.THEME_SET, "WLY:2024-03", fs.theme(), at(2, 25))
    w.activity("A1", "S1", at(1, 10), "new_year")
    w.activity("A2", "S1", at(3, 10), "learn_from_lei_feng")
    w.activity("A3", "S2", at(3, 12))
    for unit in ("I1", "S1", "S2"):
        for period in ("2024-01", "2024-02", "2024-03", "2024-Q1"):
            open_period(w, unit, period, at(1, 1, 0, 10))
    for unit, month, when in (
        ("I1", "2024-01", at(2, 2)),
        ("I1", "2024-03", at(4, 2)),
        ("S1", "2024-03", at(4, 1)),
        ("S2", "2024-03", at(4, 9)),  # late
    ):
        w.send(
            P + "bulletin_published.v1",
            f"{unit}:{month}",
            {"document_ref": f"TB-{unit}-{month}", "as_of_position": 1},
            when,
        )
    w.sync()
    try:
        yield w
    finally:
        w.close()


class TestComposite:
    def test_composite_with_bonuses_and_deductions(self, small: World) -> None:
        w = small
        w.send(
            P + "score_adjusted.v1",
            "I1:2024-Q1",
            {"kind": "bonus", "delta": 3, "reason": "省级表彰", "approver": "U-OFFICE"},
            at(4, 3),
        )
        w.send(
            P + "score_adjusted.v1",
            "I1:2024-Q1",
            {"kind": "bonus", "delta": 2, "reason": "典型经验", "approver": "U-OFFICE"},
            at(4, 4),
        )
        w.send(
            P + "score_adjusted.v1",
            "I1:2024-Q1",
            {"kind": "deduction", "delta": -1.5, "reason": "台账不实", "approver": "U-OFFICE"},
            at(4, 5),
        )
        w.sync()
        card = w.card("I1", "2024-Q1")
        # theme: months with a theme Jan, Mar; on theme Jan (A1), Mar (A2) → 1.0 × 30 = 30
        # frequency: I1, S1, S2 × 3 months = 9; S1-Jan, S1-Mar, S2-Mar → 3/9 × 30 = 10
        # bulletins: I1 January and March on time → 2/3 × 40 = 26.666667
        # base 66.666667; + bonuses 3 + 2 = 5 − deduction 1.5 → 70.166667
        composite = card["composite"]
        assert composite["status"] == "ok"
        assert composite["base"] == approx(30 + 10 + 80 / 3)
        assert composite["bonus_total"] == 5
        assert composite["deduction_total"] == 1.5
        assert composite["value"] == approx(30 + 10 + 80 / 3 + 5 - 1.5)
        assert [a["delta"] for a in card["adjustments"]] == [3, 2, -1.5]
        assert card["model"]["model_id"] == "small"

    def test_weights_of_missing_data_stay_within_the_area(self, small: World) -> None:
        card = small.card("S2", "2024-02")
        # February: no theme (insufficient) → frequency carries all 60 activity points;
        # S2 had no February activity → 0; its February bulletin is missing → 0: a real 0,
        # since 30 + 40 = 70 of the 100 points had data (≥ 50)
        composite = card["composite"]
        assert composite["covered_weight"] == approx(70)
        assert composite["value"] == 0
        frequency = indicator(card, "activity_frequency")
        assert frequency["effective_weight"] == approx(60)
        assert "theme_compliance" in composite["redistributed"]["activities"]

    def test_ranks_among_peer_stations(self, small: World) -> None:
        # March: S1 theme 1/1 → 30, frequency 1/1 → 30, bulletin on time → 40 = 100
        #        S2 theme 0/1 (A3 has no theme) → 0, frequency 1/1 → 30, bulletin late → 0
        #        = 30
        ranking = sc.rankings(small.views, "station", "I1", "2024-03", now=NOW)
        assert [(r["unit_id"], r["rank"], r["composite"]) for r in ranking["units"]] == [
            ("S1", 1, approx(100)),
            ("S2", 2, approx(30)),
        ]
        card = small.card("S2", "2024-03")
        assert card["rank"] == {
            "position": 2,
            "of": 2,
            "peers": 2,
            "level": "station",
            "parent_id": "I1",
        }
        # A scope hides rows but not ranks
        scoped = sc.rankings(small.views, "station", "I1", "2024-03", scope={"S2"}, now=NOW)
        assert [(r["unit_id"], r["rank"]) for r in scoped["units"]] == [("S2", 2)]

    def test_tied_units_share_a_rank(self, small: World) -> None:
        w = small
        w.activity("A9", "S2", at(1, 20), "new_year")
        w.sync()
        # January: S1 theme 1/1 (A1) → 30, frequency 1/1 → 30, no bulletin → 0 = 60;
        #          S2 theme 1/1 (A9) → 30, frequency 1/1 → 30, no bulletin → 0 = 60: a tie
        january = sc.rankings(w.views, "station", "I1", "2024-01", now=NOW)
        assert [(r["unit_id"], r["rank"], r["composite"]) for r in january["units"]] == [
            ("S1", 1, approx(60)),
            ("S2", 1, approx(60)),
        ]
        # Institutes under the centre in March: I1 theme 1/1 (A2) → 30, frequency I1, S1, S2:
        # S1 (A2) and S2 (A3) → 2/3 × 30 = 20, bulletin on time → 40 = 90; I2 theme 0/1,
        # frequency 0/2, no bulletin: real zeros → 0
        institutes = sc.rankings(w.views, "institute", "WLY", "2024-03", now=NOW)
        assert [(r["unit_id"], r["rank"], r["composite"]) for r in institutes["units"]] == [
            ("I1", 1, approx(90)),
            ("I2", 2, approx(0)),
        ]

    def test_the_version_in_force_at_the_start_of_the_period(self, small: World) -> None:
        w = small
        revised = copy.deepcopy(SMALL_MODEL)
        revised.update(version=2, effective_from="2024-03")
        revised["area_weights"] = {"activities": 50, "reporting": 50}
        revised["indicators"] = [
            {"code": "theme_compliance", "area": "activities", "weight": 25},
            {"code": "activity_frequency", "area": "activities", "weight": 25},
            {"code": "bulletin_on_time", "area": "reporting", "weight": 50},
        ]
        w.send(P + "scoring_model_revised.v1", "small", revised, at(2, 20))
        w.sync()
        # Q1 began in January: version 1 (I1: 30 + 10 + 26.666667 = 66.666667)
        q1 = w.card("I1", "2024-Q1")
        assert q1["model"]["version"] == 1
        assert q1["composite"]["value"] == approx(30 + 10 + 80 / 3)
        # Asking for version 2: 25 × 1 + 25 × 3/9 + 50 × 2/3 = 25 + 8.333333 + 33.333333
        v2 = w.card("I1", "2024-Q1", model_version=2)
        assert v2["model"]["version"] == 2
        assert v2["composite"]["value"] == approx(25 + 25 / 3 + 100 / 3)
        # March began after version 2's effective month
        assert w.card("I1", "2024-03")["model"]["version"] == 2
        assert [m["version"] for m in sc.scoring_models(w.views)] == [1, 2]
        with pytest.raises(PracticeEventsError) as info:
            w.card("I1", "2024-Q1", model_version=7)
        assert info.value.code == "NOT_FOUND"

    def test_trend_over_months(self, small: World) -> None:
        points = sc.trend(small.views, "S1", "month", 3, until="2024-03", now=NOW)["points"]
        assert [p["period"] for p in points] == ["2024-01", "2024-02", "2024-03"]
        # January: theme 1/1 → 30, frequency 1/1 → 30, no S1 bulletin → 0 = 60
        # February: no theme → frequency takes 60 points, 0/1 → 0; no bulletin → 0 = 0
        # March: 100 (see test_ranks_among_peer_stations)
        assert [p["composite"] for p in points] == [approx(60), approx(0), approx(100)]
        assert points[2]["indicators"]["bulletin_on_time"] == {"value": 1.0, "status": "ok"}


# --- publication -----------------------------------------------------------------------------


class TestPublication:
    def test_a_published_scorecard_is_returned_as_sent(self, small: World) -> None:
        w = small
        data = sc.compute_for_publication(w.app, w.views, "I1", "2024-Q1", now=NOW)
        ScorecardPublished.model_validate(data)
        # as of the log head, which every view has reached
        assert data["as_of_position"] == w.app.last_position()
        assert data["model_id"] == "small"
        assert data["composite"] == approx(30 + 10 + 80 / 3, abs=1e-4)
        w.send(P + "scorecard_published.v1", "I1:2024-Q1", data, at(4, 6))
        w.sync()
        # Later facts change the live scorecard, never the published one
        w.activity("A10", "S2", at(2, 14))
        w.sync()
        live = w.card("I1", "2024-Q1")
        # frequency now 4/9 → 30 + 13.333333 + 26.666667 = 70
        assert live["composite"]["value"] == approx(70)
        frozen = sc.published(w.views, "I1", "2024-Q1")
        assert len(frozen["scorecards"]) == 1
        assert frozen["scorecards"][0]["data"] == data
        assert frozen["scorecards"][0]["as_of_position"] == data["as_of_position"]

    def test_bulletins_and_reviews_are_kept_as_documents(self, small: World) -> None:
        docs = sc.published(small.views, "I1", "2024-03")["documents"]
        assert [(d["kind"], d["document_ref"]) for d in docs] == [("bulletin", "TB-I1-2024-03")]

    def test_an_insufficient_composite_cannot_be_published(self, world: World) -> None:
        with pytest.raises(PracticeEventsError) as info:
            sc.compute_for_publication(world.app, world.views, "S3", "2024-03", now=NOW)
        assert info.value.code == "INSUFFICIENT_DATA"

    def test_lagging_views_refuse_to_publish(self, small: World) -> None:
        small.send(fs.THEME_SET, "WLY:2024-02", fs.theme(month="2024-02", theme_code="x"), at(2, 1))
        small.pipeline.process([RawInput(payload=orjson.dumps(e)) for e in small.pending])
        small.pending = []
        with pytest.raises(PracticeEventsError) as info:
            sc.compute_for_publication(small.app, small.views, "I1", "2024-Q1", now=NOW, attempts=2)
        assert info.value.code == "TRANSIENT"
        # With a wait that catches the views up, it succeeds
        data = sc.compute_for_publication(
            small.app,
            small.views,
            "I1",
            "2024-Q1",
            now=NOW,
            wait=lambda position: bool(small.runner.catch_up()) or True,
        )
        assert data["as_of_position"] == small.app.last_position()


# --- access, errors, cache -------------------------------------------------------------------


class TestQueries:
    def test_scope_and_errors(self, small: World) -> None:
        with pytest.raises(AuthorizationError):
            sc.scorecard(small.views, "S2", "2024-03", scope={"S1", "H1"}, now=NOW)
        with pytest.raises(PracticeEventsError) as bad:
            sc.scorecard(small.views, "S1", "2024-13", now=NOW)
        assert bad.value.code == "BAD_REQUEST"
        with pytest.raises(PracticeEventsError) as unknown:
            sc.scorecard(small.views, "NOPE", "2024-03", now=NOW)
        assert unknown.value.code == "NOT_FOUND"

    def test_warming_the_cache_changes_no_figure(self, small: World) -> None:
        report = sc.warm_cache(small.views, ["2024-03", "2024-Q1"], now=NOW)
        # every one of the 10 sites, grouped with its peers
        assert report["2024-03"]["units"] == 10
        warmed = small.card("I1", "2024-Q1")
        sc.clear_cache()
        assert small.card("I1", "2024-Q1") == warmed

    def test_the_cache_follows_the_log(self, small: World) -> None:
        first = small.card("S2", "2024-03")
        assert small.card("S2", "2024-03") == first
        small.activity("A11", "S2", at(3, 25), "learn_from_lei_feng")
        small.sync()
        # New facts move the positions, so the next read recomputes: theme now 1/1
        assert figures(small.card("S2", "2024-03"), "theme_compliance")[1] == 1.0


# --- rebuild equals incremental ------------------------------------------------------------------


def random_history(seed: int) -> list[tuple[str, str, dict[str, Any], datetime]]:
    """A random but valid history of themes, activities, meetings, needs and assessments.

    Each aggregate's events are in order; aggregates interleave at random.
    """
    rnd = random.Random(seed)
    stories: list[list[tuple[str, str, dict[str, Any], datetime]]] = []
    sites = ["S1", "S2", "S3", "P1"]
    for n in range(rnd.randint(15, 30)):
        start = at(1, 1) + timedelta(hours=rnd.randint(0, 24 * 150))
        kind = rnd.choice(["activity", "meeting", "need", "assessment"])
        subject = f"{kind[0].upper()}{seed}-{n}"
        story: list[tuple[str, str, dict[str, Any], datetime]] = []
        if kind == "activity":
            data = fs.activity(
                site_id=rnd.choice(sites),
                theme_code=rnd.choice([None, "t1"]),
                starts_at=start.isoformat(),
                ends_at=(start + timedelta(hours=2)).isoformat(),
            )
            story.append((fs.PLANNED, subject, data, start - timedelta(days=2)))
            if rnd.random() < 0.7:
                story.append((fs.COMPLETED, subject, fs.completion(), start + timedelta(hours=3)))
        elif kind == "meeting":
            site = rnd.choice(["H1", "H2", "H3"])
            story.append(
                (
                    fs.HELD,
                    subject,
                    fs.meeting(
                        site_id=site,
                        started_at=start.isoformat(),
                        ended_at=(start + timedelta(hours=1)).isoformat(),
                    ),
                    start + timedelta(hours=2),
                )
            )
            for step in rnd.sample(
                ["explain", "listen", "perform", "evaluate", "resolve"], rnd.randint(0, 5)
            ):
                story.append(
                    (fs.STEP, subject, {"step": step, "summary": "s"}, start + timedelta(hours=2))
                )
        elif kind == "need":
            p = "practice.need."
            site = rnd.choice(sites)
            story.append(
                (
                    p + "submitted.v1",
                    subject,
                    {"site_id": site, "channel": "app", "category": "c", "summary": "s"},
                    start,
                )
            )
            story.append((p + "accepted.v1", subject, {"by": site}, start + timedelta(hours=1)))
            if rnd.random() < 0.8:
                story.append(
                    (p + "dispatched.v1", subject, {"team_id": "T1"}, start + timedelta(hours=2))
                )
                if rnd.random() < 0.3:
                    story.append(
                        (
                            p + "redispatched.v1",
                            subject,
                            {"team_id": "T2", "reason": "r"},
                            start + timedelta(hours=3),
                        )
                    )
                story.append(
                    (
                        p + "service_delivered.v1",
                        subject,
                        {"team_id": "T1", "hours": 1.5},
                        start + timedelta(hours=rnd.randint(4, 80)),
                    )
                )
                closed = start + timedelta(hours=90)
                story.append((p + "closed.v1", subject, {"outcome": "fulfilled"}, closed))
                if rnd.random() < 0.6:
                    story.append(
                        (
                            p + "rated.v1",
                            subject,
                            {"rating": rnd.randint(1, 5)},
                            closed + timedelta(hours=1),
                        )
                    )
        else:
            story.append(
                (
                    fs.ASSESSED,
                    rnd.choice([*sites, "H1"]),
                    fs.assessment({"has_plan": rnd.choice(["A", "B", "C", "C#"])}),
                    start,
                )
            )
        stories.append(story)
    merged: list[tuple[str, str, dict[str, Any], datetime]] = []
    while stories:
        story = rnd.choice(stories)
        merged.append(story.pop(0))
        if not story:
            stories.remove(story)
    return merged


def table_rows(views: ViewStore) -> dict[str, list[dict[str, Any]]]:
    """Every row of every scorecards table, in a stable order."""
    out: dict[str, list[dict[str, Any]]] = {}
    with views.read() as tx:
        for logical, physical in ScorecardsProjection().table_names().items():
            rows = tx.query(f"SELECT * FROM {physical}")
            out[logical] = sorted(
                (dict(r) for r in rows),
                key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS, default=str),
            )
    return out


class TestRebuild:
    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_rebuilt_view_equals_the_incremental_one(self, store_url: str, seed: int) -> None:
        sc.clear_cache()
        rnd = random.Random(seed)
        w = World(store_url, batch_size=rnd.randint(2, 9))
        try:
            w.network()
            w.model()
            w.send(
                fs.THEME_SET, "WLY:2024-02", fs.theme(month="2024-02", theme_code="t1"), at(1, 20)
            )
            w.sync()
            history = random_history(seed)
            # Ingest in small, random slices, catching up after each: many small batches.
            while history:
                size = rnd.randint(1, 12)
                for event_type, subject, data, when in history[:size]:
                    w.send(event_type, subject, data, when)
                history = history[size:]
                w.sync()
            for unit, period in (("S1", "2024-03"), ("WLY", "2024-Q1")):
                open_period(w, unit, period, at(1, 1, 0, 10))
            w.send(
                P + "score_adjusted.v1",
                "S1:2024-03",
                {"kind": "bonus", "delta": 1, "reason": "r", "approver": "U"},
                at(3, 9),
            )
            w.send(
                P + "quarterly_review_held.v1",
                "WLY:2024-Q1",
                {"attendees_count": 9, "ranked_units": ["I1", "I2"]},
                at(4, 2),
            )
            w.sync()
            incremental = table_rows(w.views)
            before = w.card("WLY", "2024-Q1")
            rebuild(w.app, w.views, ScorecardsProjection(), batch_size=2000)
            sc.clear_cache()
            assert table_rows(w.views) == incremental
            assert sum(len(rows) for rows in incremental.values()) > 10
            assert w.card("WLY", "2024-Q1")["indicators"] == before["indicators"]
        finally:
            w.close()
