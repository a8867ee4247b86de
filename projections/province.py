"""Province read models: per-shard views merged, for a deployment sharded by district.

Each shard (one event store per district, see ``docs/sharding.md``) runs its
own projection runners into its own views. A district's scorecard needs only
its own facts, so it is computed in its shard exactly as a single store
would compute it. What spans districts is merged here, at query time:

* :func:`province_rankings`: the districts' composites ranked across the
  province (the quarterly 讲评 league table), from each shard's
  :func:`~projections.scorecards.rankings` of its centres, re-ranked together
  with the same competition ranking (``1224``);
* :func:`province_volunteers`: the volunteer indicators summed over the
  shards (counts and hours add up; rates are recomputed from the sums).

Both equal what one store holding every district would answer, because no
fact lives in two shards (reference data, which does, is not counted here).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from practice_events.scoring.model import rank
from projections.ledger import volunteers_summary
from projections.rows import rate
from projections.scorecards import DEFAULT_SETTINGS, ScorecardSettings, rankings
from projections.viewstore import ViewStore

DISTRICT_LEVEL = "centre"
"""The network level of a district (its practice centre, the root of its tree)."""


def province_rankings(
    views: Mapping[str, ViewStore],
    period: str,
    *,
    model_id: str | None = None,
    model_version: int | None = None,
    settings: ScorecardSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Rank every district of the province by composite, from each shard's views.

    ``views`` maps shard names to their view stores. Each row is the row
    :func:`~projections.scorecards.rankings` gives for the district in its
    shard plus the ``shard``; ``rank`` is re-computed over all districts
    (ties share a rank; districts without a composite are last, unranked).
    """
    rows: list[dict[str, Any]] = []
    for shard, store in views.items():
        found = rankings(
            store,
            DISTRICT_LEVEL,
            None,
            period,
            model_id=model_id,
            model_version=model_version,
            settings=settings,
            now=now,
        )
        rows.extend({**row, "shard": shard} for row in found["units"])
    ranks = rank({row["unit_id"]: row["composite"] for row in rows})
    for row in rows:
        row["rank"] = ranks[row["unit_id"]]
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["unit_id"]))
    return {
        "level": DISTRICT_LEVEL,
        "parent_id": None,
        "period": period,
        "ranked": sum(1 for value in ranks.values() if value is not None),
        "units": rows,
        "shards": sorted(views),
    }


def province_volunteers(views: Mapping[str, ViewStore], period: str) -> dict[str, Any]:
    """The province's volunteer indicators: each shard's, summed (rates from the sums).

    The figures mean what :func:`~projections.ledger.volunteers_summary` says
    for a whole store (``unit_scope`` None), over every district.

    A volunteer registered in two districts (a guest registration where they
    also serve) counts in each, as each district's ledger counts them.
    """
    registered = active = 0
    approved = 0.0
    by_shard: dict[str, dict[str, Any]] = {}
    for shard, store in views.items():
        found = volunteers_summary(store, None, period)
        by_shard[shard] = {
            "registered": found["registered"],
            "active": found["active"],
            "approved_hours": found["approved_hours"],
        }
        registered += found["registered"]
        active += found["active"]
        approved += found["approved_hours"]
    return {
        "period": period,
        "registered": registered,
        "active": active,
        "active_rate": rate(active, registered),
        "approved_hours": approved,
        "hours_per_active": rate(approved, active, digits=2),
        "by_shard": by_shard,
    }
