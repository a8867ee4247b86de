"""Contracts of the finding area: every type accepts its valid examples and refuses the rest.

Each refusal is checked by its stable code, as a producer would see it from
:func:`~practice_events.contracts.envelope.parse_structured`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from practice_events.contracts import load_all
from practice_events.contracts.base import CATALOGUE
from practice_events.contracts.envelope import contract_error_from, parse_structured
from practice_events.contracts.finding import FindingEscalated, FindingOverdue
from practice_events.errors import ContractError
from tests import factories_finding as f
from tests.harness import cloud_event

load_all()


def parse(event_type: str, data: dict[str, Any], subject: str = "F-1") -> dict[str, Any]:
    """Parse a CloudEvent of ``event_type``; return what would be stored."""
    return parse_structured(cloud_event(event_type, subject, data)).data_json


def refusal(event_type: str, data: dict[str, Any]) -> ContractError:
    """Return the ContractError a producer gets for ``data``."""
    with pytest.raises(ContractError) as info:
        parse_structured(cloud_event(event_type, "F-1", data))
    return info.value


VALID: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    (f.INSPECTION, f.inspection),
    (f.RECORDED, f.recorded),
    (f.FED_BACK, f.fed_back),
    (f.ACKNOWLEDGED, f.acknowledged),
    (f.RETURNED, f.returned),
    (f.REASSIGNED, f.reassigned),
    (f.PLAN, f.plan),
    (f.EXT_REQUESTED, lambda: f.extension(f.at(30))),
    (f.EXT_GRANTED, lambda: f.grant(f.at(30))),
    (f.EXT_DENIED, f.deny),
    (f.REPORTED, f.report),
    (f.PASSED, f.passed),
    (f.FAILED, f.failed),
    (f.CALLBACK, f.callback),
    (f.REOPENED, f.reopened),
    (f.CLOSED, f.closed),
    (f.VOIDED, f.voided),
]


class TestCatalogue:
    def test_every_finding_type_is_registered_with_its_aggregate(self) -> None:
        ours = {t: m for t, m in CATALOGUE.items() if t.startswith("practice.finding.")}
        assert set(ours) == {t for t, _ in VALID} | {f.OVERDUE, f.ESCALATED}
        assert CATALOGUE[f.INSPECTION].AGGREGATE == "inspection"
        assert all(m.AGGREGATE == "finding" for t, m in ours.items() if t != f.INSPECTION)
        assert {t for t, m in ours.items() if m.CREATES} == {f.INSPECTION, f.RECORDED}
        assert {t for t, m in ours.items() if m.SYSTEM} == {f.OVERDUE, f.ESCALATED}

    def test_every_model_and_field_is_documented(self) -> None:
        for event_type, model in CATALOGUE.items():
            if not event_type.startswith("practice.finding."):
                continue
            assert (model.__doc__ or "").strip(), event_type
            for name, field in model.model_fields.items():
                assert field.description, f"{event_type}.{name}"

    def test_json_schemas_can_be_generated(self) -> None:
        for event_type, _ in VALID:
            schema = CATALOGUE[event_type].model_json_schema()
            assert schema["type"] == "object"


class TestValidExamples:
    @pytest.mark.parametrize(("event_type", "build"), VALID, ids=[t for t, _ in VALID])
    def test_accepts_the_example(
        self, event_type: str, build: Callable[[], dict[str, Any]]
    ) -> None:
        assert isinstance(parse(event_type, build()), dict)

    @pytest.mark.parametrize(("event_type", "build"), VALID, ids=[t for t, _ in VALID])
    def test_refuses_an_invented_field(
        self, event_type: str, build: Callable[[], dict[str, Any]]
    ) -> None:
        assert refusal(event_type, {**build(), "colour": "red"}).code == "SCHEMA_VIOLATION"

    def test_stored_data_drops_absent_optionals(self) -> None:
        stored = parse(f.FED_BACK, {})
        assert stored == {}


class TestInspectionConducted:
    def test_needs_an_inspector(self) -> None:
        assert refusal(f.INSPECTION, f.inspection(inspector_ids=[])).code == "SCHEMA_VIOLATION"

    def test_refuses_an_end_before_the_start(self) -> None:
        data = f.inspection(started_at=f.at(4, 11).isoformat(), ended_at=f.at(4, 9).isoformat())
        assert refusal(f.INSPECTION, data).code == "OUT_OF_RANGE"

    def test_refuses_naive_times(self) -> None:
        data = f.inspection(started_at="2024-03-04T09:00:00")
        assert refusal(f.INSPECTION, data).code == "NAIVE_DATETIME"

    def test_refuses_a_version_without_a_checklist(self) -> None:
        data = f.inspection(checklist_id=None)
        assert refusal(f.INSPECTION, data).code == "SCHEMA_VIOLATION"

    def test_refuses_an_unknown_item_result(self) -> None:
        data = f.inspection(item_results=[{"code": "has_site", "result": "maybe"}])
        assert refusal(f.INSPECTION, data).code == "SCHEMA_VIOLATION"


class TestFindingRecorded:
    @pytest.mark.parametrize("field", ["source", "site_id", "severity", "category", "description"])
    def test_requires(self, field: str) -> None:
        assert refusal(f.RECORDED, f.recorded(**{field: None})).code == "SCHEMA_VIOLATION"

    def test_responsible_unit_is_optional(self) -> None:
        assert "responsible_unit_id" not in parse(f.RECORDED, f.recorded(responsible_unit_id=None))

    def test_refuses_an_unknown_severity(self) -> None:
        assert refusal(f.RECORDED, f.recorded(severity="urgent")).code == "SCHEMA_VIOLATION"

    def test_refuses_an_unknown_source(self) -> None:
        assert refusal(f.RECORDED, f.recorded(source="rumour")).code == "SCHEMA_VIOLATION"

    def test_an_inspection_finding_names_its_inspection(self) -> None:
        error = refusal(f.RECORDED, f.recorded(source="inspection"))
        assert error.code == "SCHEMA_VIOLATION"
        assert "inspection_id" in error.reason
        assert parse(f.RECORDED, f.recorded(source="inspection", inspection_id="INS-1"))

    def test_refuses_an_upper_case_category(self) -> None:
        assert refusal(f.RECORDED, f.recorded(category="Records")).code == "SCHEMA_VIOLATION"

    def test_refuses_empty_description(self) -> None:
        assert refusal(f.RECORDED, f.recorded(description="  ")).code == "SCHEMA_VIOLATION"

    def test_refuses_bad_evidence_hash(self) -> None:
        data = f.recorded(evidence=[{"uri": "https://x/1.jpg", "sha256": "xyz"}])
        assert refusal(f.RECORDED, data).code == "SCHEMA_VIOLATION"


class TestFeedBackAndDispute:
    def test_producers_cannot_send_due_times(self) -> None:
        data = f.fed_back(ack_due_at=f.at(5).isoformat())
        assert refusal(f.FED_BACK, data).code == "SCHEMA_VIOLATION"

    def test_return_needs_a_known_reason_and_a_basis(self) -> None:
        assert refusal(f.RETURNED, f.returned(reason_code="busy")).code == "SCHEMA_VIOLATION"
        assert refusal(f.RETURNED, f.returned(basis=None)).code == "SCHEMA_VIOLATION"

    def test_reassignment_needs_a_unit_and_who_ruled(self) -> None:
        assert refusal(f.REASSIGNED, f.reassigned(ruling_by=None)).code == "SCHEMA_VIOLATION"
        assert refusal(f.REASSIGNED, {"ruling_by": "X"}).code == "SCHEMA_VIOLATION"


class TestRectification:
    def test_a_plan_needs_actions(self) -> None:
        assert refusal(f.PLAN, f.plan(actions=[])).code == "SCHEMA_VIOLATION"

    def test_a_plan_action_needs_an_aware_due_time(self) -> None:
        action = {"description": "x", "owner": "A", "due_at": "2024-03-20T09:00:00"}
        assert refusal(f.PLAN, f.plan(actions=[action])).code == "NAIVE_DATETIME"

    def test_a_plan_action_owner_is_an_id_not_a_name(self) -> None:
        action = {"description": "x", "owner": "张 三", "due_at": f.at(20).isoformat()}
        assert refusal(f.PLAN, f.plan(actions=[action])).code == "SCHEMA_VIOLATION"

    def test_a_report_needs_evidence_and_actions(self) -> None:
        assert refusal(f.REPORTED, f.report(evidence=[])).code == "SCHEMA_VIOLATION"
        assert refusal(f.REPORTED, f.report(actions_done=[])).code == "SCHEMA_VIOLATION"
        assert refusal(f.REPORTED, f.report(reported_by=None)).code == "SCHEMA_VIOLATION"

    def test_extension_messages(self) -> None:
        assert refusal(f.EXT_REQUESTED, {"reason": "x"}).code == "SCHEMA_VIOLATION"
        naive = {"requested_due_at": "2024-03-30T00:00:00", "reason": "x"}
        assert refusal(f.EXT_REQUESTED, naive).code == "NAIVE_DATETIME"
        assert refusal(f.EXT_GRANTED, f.grant(f.at(30), approver=None)).code == "SCHEMA_VIOLATION"
        assert refusal(f.EXT_DENIED, f.deny(reason=None)).code == "SCHEMA_VIOLATION"


class TestVerificationAndAfter:
    def test_verification_needs_verifier_unit_and_method(self) -> None:
        assert refusal(f.PASSED, f.passed(verifier_unit_id=None)).code == "SCHEMA_VIOLATION"
        assert refusal(f.PASSED, f.passed(method="hearsay")).code == "SCHEMA_VIOLATION"
        assert refusal(f.FAILED, f.failed(reason=None)).code == "SCHEMA_VIOLATION"

    def test_callback_attribution_only_when_unsatisfied(self) -> None:
        data = f.callback(satisfied="yes", attributable_to_handler=True)
        assert refusal(f.CALLBACK, data).code == "SCHEMA_VIOLATION"
        ok = parse(f.CALLBACK, f.callback(satisfied="no", attributable_to_handler=True))
        assert ok["attributable_to_handler"] is True

    def test_callback_answer_is_from_the_list(self) -> None:
        assert refusal(f.CALLBACK, f.callback(satisfied="maybe")).code == "SCHEMA_VIOLATION"

    def test_reopen_needs_an_explanation(self) -> None:
        assert refusal(f.REOPENED, f.reopened(explanation=None)).code == "SCHEMA_VIOLATION"
        assert refusal(f.REOPENED, f.reopened(explanation=" ")).code == "SCHEMA_VIOLATION"
        assert refusal(f.REOPENED, f.reopened(cause="boredom")).code == "SCHEMA_VIOLATION"

    @pytest.mark.parametrize("closure", ["duplicate", "merged"])
    def test_duplicate_and_merged_name_the_kept_finding(self, closure: str) -> None:
        assert refusal(f.CLOSED, f.closed(closure=closure)).code == "SCHEMA_VIOLATION"
        assert parse(f.CLOSED, f.closed(closure=closure, related_finding_id="F-0"))

    def test_closure_needs_an_approver(self) -> None:
        assert refusal(f.CLOSED, f.closed(approver=None)).code == "SCHEMA_VIOLATION"

    def test_voiding_needs_an_approver_and_a_reason(self) -> None:
        assert refusal(f.VOIDED, f.voided(approver=None)).code == "SCHEMA_VIOLATION"
        assert refusal(f.VOIDED, f.voided(reason=None)).code == "SCHEMA_VIOLATION"


class TestSystemEvents:
    @pytest.mark.parametrize(
        ("event_type", "data"),
        [
            (f.OVERDUE, {"stage": "rectification", "due_at": "2024-03-25T23:59:59+08:00"}),
            (f.ESCALATED, {"stage": "rectification", "level": 1}),
        ],
    )
    def test_producers_may_not_send_them(self, event_type: str, data: dict[str, Any]) -> None:
        assert refusal(event_type, data).code == "SYSTEM_EVENT_TYPE"

    def test_overdue_contract(self) -> None:
        ok = FindingOverdue.model_validate(
            {"stage": "acknowledgement", "due_at": "2024-03-06T23:59:59+08:00"}
        )
        assert ok.stage == "acknowledgement"
        with pytest.raises(ValidationError) as info:
            FindingOverdue.model_validate({"stage": "lunch", "due_at": "2024-03-06T23:59:59+08:00"})
        assert contract_error_from(info.value, f.OVERDUE).code == "SCHEMA_VIOLATION"
        with pytest.raises(ValidationError) as info:
            FindingOverdue.model_validate({"stage": "verification", "due_at": "2024-03-06T23:59"})
        assert contract_error_from(info.value, f.OVERDUE).code == "NAIVE_DATETIME"

    @pytest.mark.parametrize("level", [0, 4])
    def test_escalation_levels_are_one_to_three(self, level: int) -> None:
        with pytest.raises(ValidationError) as info:
            FindingEscalated.model_validate({"stage": "rectification", "level": level})
        assert contract_error_from(info.value, f.ESCALATED).code == "OUT_OF_RANGE"

    def test_escalation_target_is_from_the_list(self) -> None:
        ok = FindingEscalated.model_validate(
            {"stage": "verification", "level": 2, "to": "leadership"}
        )
        assert ok.to == "leadership"
        with pytest.raises(ValidationError):
            FindingEscalated.model_validate({"stage": "verification", "level": 2, "to": "press"})
