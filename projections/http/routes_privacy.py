"""A volunteer's personal details, for the roles that may see them, decrypted on request.

Personal details are in no view: they are read from the event that recorded
them and decrypted with the person's key when asked for
(:class:`practice_events.privacy.reveal.Revealer`), and the answer is never
cached (``Cache-Control: no-store``), so an erasure takes effect at the
next request. After ``practice-events privacy erase`` every detail reads
``"[erased]"`` and ``status`` is ``erased``.

Who may see them: the district supervisor and the station supervisor of the
volunteer's home site (within their scope, 404 otherwise, as for ledgers)
and auditors. Institute supervisors coordinate activities across stations
and do not need them (403). Every answer is logged with the token id and
the volunteer number, never the details.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from projections.http.access import Caller, _role_dependency, not_found
from projections.http.exports import respond
from projections.http.routes_common import ERRORS, Open, ReadApiDep, fresh

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1", tags=["ledgers"])

PERSONAL_READERS = ("district_supervisor", "station_supervisor", "auditor")
"""Roles that may read personal details (each within its scope)."""

PersonalReader = Annotated[Caller, Depends(_role_dependency(*PERSONAL_READERS))]
"""A district or station supervisor, or an auditor (403 for other roles)."""


class PersonalDetails(Open):
    """A volunteer's details: ``recorded``, ``erased`` (every detail ``[erased]``) or ``none``."""

    volunteer_no: str
    status: str
    name: str | None = None
    phone: str | None = None
    id_number: str | None = None
    recorded_at: str | None = None
    erased_at: str | None = None


@router.get(
    "/volunteers/{volunteer_no}/personal-details",
    summary="A volunteer's name, mobile and ID number, decrypted now (never cached)",
    response_model=PersonalDetails,
    responses=ERRORS,
)
def get_personal_details(
    *,
    request: Request,
    caller: PersonalReader,
    api: ReadApiDep,
    volunteer_no: Annotated[str, Path(min_length=1, max_length=128)],
    _fresh: Annotated[None, fresh("network", "ledger")],
) -> Response:
    """Return the volunteer's latest details (404 when unknown or not of the caller's units)."""
    from practice_events.privacy.reveal import Revealer
    from projections import ledger

    views = api.views()
    known = ledger.volunteer_ledger(
        views, volunteer_no, unit_scope=caller.scope(views), sessions_limit=1, points_limit=1
    )
    if known is None:
        raise not_found("volunteer", volunteer_no)
    assert api.runtime is not None
    details = Revealer(api.runtime.store).current(volunteer_no)
    log.info(
        "personal_details_read",
        token_id=caller.token.token_id,
        volunteer_no=volunteer_no,
        status=details.status,
    )
    body = details.as_dict()
    body.pop("position", None)
    body.pop("key_id", None)
    return respond(request, body, None, "json", headers={"Cache-Control": "no-store"})
