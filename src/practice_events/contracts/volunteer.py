"""Contracts of the volunteer area: volunteers, officials' dual check-in, teams and points.

A volunteer is known by the unified volunteer number (志愿者统一编号) of the
national data standard, which is the CloudEvents ``subject`` of every event
here: names, phone and ID numbers never appear in an event in clear. The
one exception in what producers send, ``personal_details_recorded``, is
sealed under the person's own key by the ingest pipeline before it is
stored, and ``personal_data_erased`` (emitted by ``practice-events privacy
erase``) records that the key was destroyed (see ``docs/privacy.md``). Officials
(机关干部) who do the "dual check-in, dual service" (双报到、双服务) are
volunteers with ``is_official: true`` and their employer unit; they report to
the community where they live and to a volunteer service post, and have an
annual quota of service hours.

The volunteer is also the ledger of service hours and points (the attendance
area's events name the same aggregate): points come from approved hours,
are spent with ``points_redeemed`` and star levels (★ … ★★★★★ at 100 / 300 /
600 / 1,000 / 1,500 approved hours, the MCA 2012 rule) are attained once
each. ``star_level_attained`` is emitted by practice-events itself.

Teams (志愿服务队) are a second, small aggregate: ``team_registered``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from practice_events.contracts.base import (
    Code,
    EventData,
    Identifier,
    ShortText,
    Text,
    contract,
)

VolunteerStatus = Literal["active", "suspended", "archived"]
"""Where a volunteer stands: serving, temporarily barred, or no longer serving."""

MAX_SKILLS = 50
"""At most this many skill codes per volunteer."""

TrainingHours = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]
"""Length of a training course in hours (a course may span several days)."""

QuotaHours = Annotated[float, Field(gt=0, le=2000, allow_inf_nan=False)]
"""An annual quota of service hours for an official."""

Year = Annotated[int, Field(ge=2000, le=2100)]
"""A calendar year in the network's time zone."""

Points = Annotated[int, Field(gt=0, le=1_000_000)]
"""A positive number of points."""

StarLevel = Annotated[int, Field(ge=1, le=5)]
"""A star level, ★ (1) to ★★★★★ (5)."""

Skills = Annotated[list[Code], Field(max_length=MAX_SKILLS)]
"""Skill codes from the network's list (``first_aid``, ``legal_advice`` ...)."""


def _unique_skills(skills: list[str]) -> None:
    """Refuse a skill list that names one skill twice."""
    seen: set[str] = set()
    for skill in skills:
        if skill in seen:
            raise PydanticCustomError(
                "value_error", "skill {skill} appears twice in skills", {"skill": skill}
            )
        seen.add(skill)


@contract
class VolunteerRegistered(EventData):
    """A volunteer was registered under a volunteer number (the volunteer's first event).

    Sent once per volunteer number, by the registration system, after real-name
    verification has been done there (the verified identity stays in that
    system's encrypted store; only the number travels). ``home_site_id`` is the
    station or post the volunteer belongs to. Officials doing the dual check-in
    (双报到) are registered with ``is_official: true`` and their employer unit
    in ``home_unit_id``; ordinary volunteers have no employer unit here.
    """

    TYPE: ClassVar[str] = "practice.volunteer.registered.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    CREATES: ClassVar[bool] = True
    REFERENCES: ClassVar[dict[str, str]] = {"home_site_id": "site"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "home_site_id": "WLY-ZHAN-07",
                    "skills": ["first_aid", "legal_advice"],
                    "registered_on": "2024-03-01",
                },
                {
                    "home_site_id": "WLY-ZHAN-07",
                    "is_official": True,
                    "home_unit_id": "WLY-DEPT-FINANCE",
                },
            ]
        }
    )

    home_site_id: Identifier = Field(
        description="The station, post or institute the volunteer belongs to."
    )
    skills: Skills = Field(
        default_factory=list, description="Skill codes, each at most once (may be empty)."
    )
    is_official: bool = Field(
        default=False,
        description="True for an official (机关干部) doing the dual check-in (双报到).",
    )
    home_unit_id: Identifier | None = Field(
        default=None,
        description="An official's employer unit (required for officials, absent otherwise).",
    )
    registered_on: date | None = Field(
        default=None,
        description="Date of registration in the source system, if earlier than this event.",
    )

    @model_validator(mode="after")
    def _official_has_unit(self) -> VolunteerRegistered:
        _unique_skills(self.skills)
        if self.is_official and self.home_unit_id is None:
            raise PydanticCustomError(
                "value_error", "home_unit_id is required when is_official is true"
            )
        if not self.is_official and self.home_unit_id is not None:
            raise PydanticCustomError(
                "value_error",
                "home_unit_id is only for officials: set is_official to true or leave it out",
            )
        return self


@contract
class VolunteerStatusChanged(EventData):
    """A volunteer's status changed to active, suspended or archived, with the reason.

    Suspended and archived volunteers cannot check in or join teams; their past
    hours and points stay. An archived volunteer can be made active again (the
    volunteer number is for life). Statuses never change automatically.
    """

    TYPE: ClassVar[str] = "practice.volunteer.status_changed.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "suspended", "reason": "五次无故缺席，暂停服务三个月"}]
        }
    )

    status: VolunteerStatus = Field(description="The new status.")
    reason: Text = Field(description="Why the status changed (kept for the audit trail).")


@contract
class VolunteerSkillsUpdated(EventData):
    """A volunteer's skills were replaced by a new list.

    The list is the complete new set (not a delta), so a retried or reordered
    update cannot leave a half-applied state.
    """

    TYPE: ClassVar[str] = "practice.volunteer.skills_updated.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"skills": ["first_aid", "elder_care"]}]}
    )

    skills: Skills = Field(description="The complete new list of skill codes (may be empty).")

    @model_validator(mode="after")
    def _unique(self) -> VolunteerSkillsUpdated:
        _unique_skills(self.skills)
        return self


@contract
class VolunteerJoinedTeam(EventData):
    """A volunteer joined a volunteer service team (志愿服务队).

    The team must be registered; a volunteer may be in several teams but joins
    each one once. Suspended and archived volunteers cannot join.
    """

    TYPE: ClassVar[str] = "practice.volunteer.joined_team.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    REFERENCES: ClassVar[dict[str, str]] = {"team_id": "team"}

    model_config = ConfigDict(json_schema_extra={"examples": [{"team_id": "WLY-TEAM-031"}]})

    team_id: Identifier = Field(description="The team joined.")
    role: Code | None = Field(
        default=None, description="Role in the team, e.g. member, captain, deputy."
    )


@contract
class VolunteerLeftTeam(EventData):
    """A volunteer left a team they were a member of."""

    TYPE: ClassVar[str] = "practice.volunteer.left_team.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(json_schema_extra={"examples": [{"team_id": "WLY-TEAM-031"}]})

    team_id: Identifier = Field(description="The team left.")
    reason: Text | None = Field(default=None, description="Why, if known.")


@contract
class TrainingCompleted(EventData):
    """A volunteer completed a training course (the CloudEvents time is the completion time).

    Training is recorded separately from service hours (MCA Order 67 art. 4
    lists it as its own block of the record); some duties require a current
    training, hence the optional expiry date.
    """

    TYPE: ClassVar[str] = "practice.volunteer.training_completed.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "course_id": "FIRST-AID-2024",
                    "hours": 6,
                    "certificate_ref": "RC-2024-00871",
                    "expires_on": "2026-05-31",
                }
            ]
        }
    )

    course_id: Identifier = Field(description="The course completed.")
    hours: TrainingHours = Field(description="Length of the course in hours (not service hours).")
    certificate_ref: ShortText | None = Field(
        default=None, description="Number of the certificate issued, if any."
    )
    expires_on: date | None = Field(
        default=None,
        description="Last day the training counts as current; after the completion date.",
    )


@contract
class InsuranceRecorded(EventData):
    """A volunteer's accident insurance coverage was recorded (志愿者保险).

    Organisers buy cover for their volunteers; the insurance-coverage indicator
    compares service dates with these windows. Dates are calendar days in the
    network's time zone, both ends included.
    """

    TYPE: ClassVar[str] = "practice.volunteer.insurance_recorded.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "policy_no": "PICC-2024-ZJJ-000123",
                    "insurer": "中国人民财产保险",
                    "covered_from": "2024-01-01",
                    "covered_to": "2024-12-31",
                }
            ]
        }
    )

    policy_no: ShortText = Field(description="The insurer's policy number.")
    insurer: ShortText = Field(description="Name of the insurer.")
    covered_from: date = Field(description="First day covered.")
    covered_to: date = Field(description="Last day covered; not before covered_from.")
    scope: Text | None = Field(default=None, description="What the policy covers, if stated.")

    @model_validator(mode="after")
    def _window(self) -> InsuranceRecorded:
        if self.covered_to < self.covered_from:
            raise PydanticCustomError(
                "out_of_range",
                "covered_to ({to}) is before covered_from ({start})",
                {"to": self.covered_to.isoformat(), "start": self.covered_from.isoformat()},
            )
        return self


@contract
class OfficialReportedToCommunity(EventData):
    """An official reported to the community where they live (双报到: 到社区报到).

    Only for volunteers registered as officials. Reported once per community
    and calendar year (network time zone); reporting to another community the
    same year records a move.
    """

    TYPE: ClassVar[str] = "practice.volunteer.official_reported_to_community.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    REFERENCES: ClassVar[dict[str, str]] = {"community_site_id": "site"}

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"community_site_id": "WLY-ZHAN-07"}]}
    )

    community_site_id: Identifier = Field(
        description="The community's practice station reported to."
    )


@contract
class OfficialReportedToPost(EventData):
    """An official reported to a volunteer service post (双报到: 到志愿服务岗报到).

    Only for volunteers registered as officials. Reported once per post and
    calendar year (network time zone).
    """

    TYPE: ClassVar[str] = "practice.volunteer.official_reported_to_post.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    REFERENCES: ClassVar[dict[str, str]] = {"post_site_id": "site"}

    model_config = ConfigDict(json_schema_extra={"examples": [{"post_site_id": "WLY-GANG-03"}]})

    post_site_id: Identifier = Field(description="The volunteer service post reported to.")


@contract
class OfficialQuotaSet(EventData):
    """An official's annual quota of service hours was set (e.g. 50 h a year in Xingtai).

    Only for officials. Setting the quota of a year again replaces it; the
    dual-service completion indicator compares approved hours with it.
    """

    TYPE: ClassVar[str] = "practice.volunteer.official_quota_set.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"year": 2024, "required_hours": 50}]}
    )

    year: Year = Field(description="The calendar year the quota is for.")
    required_hours: QuotaHours = Field(description="Service hours required in that year.")


@contract
class PointsRedeemed(EventData):
    """A volunteer spent points at an outlet (积分兑换: a kiosk, a charity store ...).

    Refused when the volunteer's balance (points awarded − reversed − redeemed)
    is smaller than ``points``: a balance never goes negative by redemption.
    """

    TYPE: ClassVar[str] = "practice.volunteer.points_redeemed.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"points": 100, "item": "大米 5kg", "outlet": "WLY-KIOSK-02"}]
        }
    )

    points: Points = Field(description="Points spent (a positive whole number).")
    item: ShortText = Field(description="What they were exchanged for.")
    outlet: Identifier = Field(description="Where: the kiosk or store that took the points.")


@contract
class StarLevelAttained(EventData):
    """A volunteer reached a star level (emitted by practice-events).

    Emitted automatically, once per level, when approved service hours first
    reach the level's threshold (100 / 300 / 600 / 1,000 / 1,500 hours under the
    MCA 2012 rule). A level once attained is not withdrawn when hours are later
    rejected or corrected down: the volunteer association revokes stars by its
    own procedure.
    """

    TYPE: ClassVar[str] = "practice.volunteer.star_level_attained.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    SYSTEM: ClassVar[bool] = True

    level: StarLevel = Field(description="The level attained, 1 (★) to 5 (★★★★★).")
    threshold_hours: float = Field(ge=0, description="Approved hours the level requires.")
    approved_hours: float = Field(ge=0, description="Approved hours when it was attained.")
    rule_version: Code = Field(description="The star rule applied, e.g. mca-2012.")
    session_id: Identifier = Field(description="The session whose approval crossed the threshold.")


@contract
class TeamRegistered(EventData):
    """A volunteer service team (志愿服务队) was registered (the team's first event).

    Teams hang under a site; needs are dispatched to them and volunteers join
    them. ``lead_volunteer_no`` must name a registered volunteer.
    """

    TYPE: ClassVar[str] = "practice.volunteer.team_registered.v1"
    AGGREGATE: ClassVar[str] = "team"
    CREATES: ClassVar[bool] = True
    REFERENCES: ClassVar[dict[str, str]] = {"site_id": "site", "lead_volunteer_no": "volunteer"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site_id": "WLY-ZHAN-07",
                    "name": "军地坪街道红马甲志愿服务队",
                    "category": "elder_care",
                }
            ]
        }
    )

    site_id: Identifier = Field(description="The site the team belongs to.")
    name: ShortText = Field(description="Name of the team.")
    category: Code = Field(description="Service category of the team (elder_care, legal ...).")
    lead_volunteer_no: Identifier | None = Field(
        default=None, description="Volunteer number of the team leader, if known."
    )


# --- personal details (sealed at ingest; see docs/privacy.md) ------------------------------

PROVINCE_CODES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91}
)
"""The first two digits of a resident ID number (GB/T 2260 provinces, HK/MO/TW, overseas)."""

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def resident_id_check(first17: str) -> str:
    """Return the check character of an ID number's first 17 digits (GB 11643, MOD 11-2)."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def _resident_id(value: str) -> str:
    """Check an 18-character resident ID number; messages never repeat the value."""
    number = value.upper()
    if not re.fullmatch(r"\d{17}[\dX]", number):
        raise PydanticCustomError(
            "value_error",
            "must be an 18-character resident ID number (17 digits, then a digit or X)",
        )
    if int(number[:2]) not in PROVINCE_CODES:
        raise PydanticCustomError("value_error", "does not start with a province code")
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise PydanticCustomError("value_error", "has no valid date of birth") from None
    if born.year < 1900:
        raise PydanticCustomError("value_error", "has no valid date of birth")
    if resident_id_check(number[:17]) != number[17]:
        raise PydanticCustomError("value_error", "fails its check character (GB 11643)")
    return number


def _mainland_mobile(value: str) -> str:
    """Normalise a mainland mobile number to its 11 digits; messages never repeat the value."""
    number = re.sub(r"[\s-]", "", value)
    for prefix in ("+86", "0086"):
        if number.startswith(prefix):
            number = number[len(prefix) :]
            break
    if not re.fullmatch(r"1[3-9]\d{9}", number):
        raise PydanticCustomError(
            "value_error",
            "must be a mainland mobile number: 11 digits starting 13 to 19, optionally after +86",
        )
    return number


def _person_name(value: str) -> str:
    if any(ch.isdigit() or ord(ch) < 32 for ch in value):
        raise PydanticCustomError("value_error", "a name has no digits or control characters")
    return value


PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_person_name),
]
"""A person's name as on their ID card (中文 or other scripts, ``·`` allowed)."""

MobileNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=32), AfterValidator(_mainland_mobile)
]
"""A mainland mobile number, stored as its 11 digits."""

ResidentIdNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=32), AfterValidator(_resident_id)
]
"""An 18-character resident ID number (居民身份证号码) with a valid check character."""


@contract
class PersonalDetailsRecorded(EventData):
    """A volunteer's personal details were recorded (name, mobile number, ID number).

    The only event that carries personal data. The ingest pipeline seals
    ``name``, ``phone`` and ``id_number`` with the volunteer's own data key
    (AES-256-GCM) before the event reaches the aggregate: the stored event
    holds ``sealed`` (ciphertext and key id) instead, and a refused one is
    stored with those fields redacted. They are shown decrypted to the roles
    allowed to see them, in audit histories, exports and certificates, until
    ``practice-events privacy erase`` destroys the key. A later event replaces
    the details; after an erasure, new details are sealed under a new key.
    """

    TYPE: ClassVar[str] = "practice.volunteer.personal_details_recorded.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "张三",
                    "phone": "13800138000",
                    "id_number": "11010519491231002X",
                    "consent_ref": "CONSENT-2024-000871",
                }
            ]
        }
    )

    name: PersonName = Field(description="Name as on the ID card.")
    phone: MobileNumber | None = Field(
        default=None, description="Mainland mobile number (11 digits; +86 is dropped)."
    )
    id_number: ResidentIdNumber | None = Field(
        default=None, description="18-character resident ID number (check character verified)."
    )
    consent_ref: Identifier | None = Field(
        default=None,
        description="Reference of the volunteer's signed consent in the registration system "
        "(not personal data; stored in clear).",
    )


@contract
class PersonalDataErased(EventData):
    """A volunteer's personal details were erased: their keys were destroyed (system event).

    Emitted by ``practice-events privacy erase`` in the same transaction that
    destroys the keys (crypto-shredding): every ``personal_details_recorded``
    sealed with them becomes unreadable, everywhere, while the log, its hash
    chain, hours and points stay unchanged. Carries no personal data: the key
    ids destroyed, why, and the request's reference.
    """

    TYPE: ClassVar[str] = "practice.volunteer.personal_data_erased.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    SYSTEM: ClassVar[bool] = True

    key_ids: Annotated[list[Identifier], Field(max_length=1000)] = Field(
        description="The data keys destroyed."
    )
    reason: Code = Field(
        default="data_subject_request",
        description="Why: data_subject_request, retention_expired, consent_withdrawn ...",
    )
    request_ref: Identifier | None = Field(
        default=None, description="Reference of the erasure request, if any."
    )
