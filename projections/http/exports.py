"""Exports: every list and scorecard as JSON or CSV, with headers in the caller's language.

Supervisors live in spreadsheets. A list or scorecard endpoint answers JSON
by default, and CSV with ``?format=csv`` or ``Accept: text/csv`` (``format``
wins). CSV column headers are Chinese for ``Accept-Language: zh-CN`` (and
any ``zh``; also the default, the network's language) and English for
``en``; values are the same in both (codes, ISO 8601 times, numbers), so a
sheet can be read back by programs. The answer says ``Content-Language``.

CSV details, chosen for spreadsheet programs: UTF-8 with a byte-order mark
(Excel needs it to read Chinese), CRLF line ends (RFC 4180), nested values
as JSON text, booleans ``true``/``false``, empty cells for nulls, and text
cells that start with ``=``, ``+``, ``-``, ``@`` (or a tab or CR) prefixed
with ``'`` so that a spreadsheet never runs producer-supplied text as a
formula (CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import Request
from starlette.responses import Response

from practice_events.api.problems import JsonResponse, Problem

Language = Literal["zh-CN", "en"]
Format = Literal["json", "csv"]

CSV_MEDIA = "text/csv"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

LABELS: dict[str, tuple[str, str]] = {
    # units
    "unit_id": ("单位编号", "Unit"),
    "site_id": ("站点编号", "Site"),
    "level": ("层级", "Level"),
    "parent_id": ("上级单位", "Parent unit"),
    "name": ("名称", "Name"),
    "active": ("是否在用", "Active"),
    "registered_date": ("登记日期", "Registered on"),
    "deactivated_date": ("停用日期", "Deactivated on"),
    "station_id": ("所属站", "Station"),
    "institute_id": ("所属所", "Institute"),
    "centre_id": ("所属中心", "Centre"),
    "path": ("层级路径", "Path"),
    "assessment_count": ("测评次数", "Assessments"),
    "last_assessed_at": ("最近测评时间", "Last assessed at"),
    "last_score": ("最近六有得分", "Last six-haves score"),
    "lat": ("纬度", "Latitude"),
    "lon": ("经度", "Longitude"),
    # findings
    "finding_id": ("问题编号", "Finding"),
    "responsible_unit_id": ("责任单位", "Responsible unit"),
    "severity": ("严重程度", "Severity"),
    "category": ("类别", "Category"),
    "source": ("来源", "Source"),
    "description": ("问题描述", "Description"),
    "stage": ("阶段", "Stage"),
    "sla_status": ("时限状态", "SLA status"),
    "overdue": ("是否超期", "Overdue"),
    "overdue_working_days": ("超期工作日", "Working days overdue"),
    "recorded_at": ("发现时间", "Recorded at"),
    "fed_back_at": ("反馈时间", "Fed back at"),
    "ack_due_at": ("签收时限", "Acknowledge by"),
    "acknowledged_at": ("签收时间", "Acknowledged at"),
    "rectify_due_at": ("整改时限", "Rectify by"),
    "rectified_at": ("整改完成时间", "Rectified at"),
    "verify_due_at": ("验收时限", "Verify by"),
    "verified_at": ("验收时间", "Verified at"),
    "closed_at": ("销号时间", "Closed at"),
    "closure": ("办结方式", "Closure"),
    "current_target": ("当前环节", "Current target"),
    "current_due_at": ("当前时限", "Current due at"),
    "reopen_count": ("重新整改次数", "Reopens"),
    "return_count": ("退回次数", "Returns"),
    "extension_count": ("延期次数", "Extensions"),
    "escalation_level": ("督办级别", "Escalation level"),
    "cycle": ("整改轮次", "Cycle"),
    # indicators
    "indicator": ("指标", "Indicator"),
    "code": ("指标代码", "Code"),
    "title": ("指标名称", "Title"),
    "area": ("板块", "Area"),
    "status": ("状态", "Status"),
    "value": ("数值", "Value"),
    "numerator": ("分子", "Numerator"),
    "denominator": ("分母", "Denominator"),
    "min_sample": ("最小样本", "Minimum sample"),
    "window": ("统计口径", "Window"),
    "weight": ("权重", "Weight"),
    "effective_weight": ("有效权重", "Effective weight"),
    "normalised": ("标准化值", "Normalised"),
    "score": ("得分", "Score"),
    "in_model": ("计入综合分", "In model"),
    "period": ("期间", "Period"),
    "composite": ("综合得分", "Composite"),
    "rank": ("排名", "Rank"),
    "covered_weight": ("有数据权重", "Covered weight"),
    "model_id": ("评分模型", "Scoring model"),
    "model_version": ("模型版本", "Model version"),
    "visible": ("可查看详情", "Details visible"),
    "pending": ("待定", "Pending"),
    "excluded": ("剔除", "Excluded"),
    "details": ("明细", "Details"),
    # volunteers
    "volunteer_no": ("志愿者编号", "Volunteer number"),
    "home_site_id": ("所属站点", "Home site"),
    "home_unit_id": ("工作单位", "Employer unit"),
    "is_official": ("是否党员干部", "Official"),
    "registered_on": ("注册日期", "Registered on"),
    "approved_hours": ("认定时长", "Approved hours"),
    "pending_hours": ("待审时长", "Pending hours"),
    "rejected_hours": ("驳回时长", "Rejected hours"),
    "points_balance": ("积分余额", "Points balance"),
    "points_awarded": ("累计积分", "Points awarded"),
    "star_level": ("星级", "Star level"),
    "last_service_date": ("最近服务日期", "Last service date"),
    "community_site_id": ("报到社区", "Community"),
    "community_reported_at": ("社区报到时间", "Reported to community at"),
    "post_site_id": ("报到岗位", "Post"),
    "post_reported_at": ("岗位报到时间", "Reported to post at"),
    "reported_to_community": ("已报到社区", "Reported to community"),
    "reported_to_post": ("已报到岗位", "Reported to post"),
    "dual_reported": ("双报到", "Dual check-in"),
    "quota_hours": ("年度服务时长要求", "Annual quota (hours)"),
    "quota_due_so_far": ("应完成时长", "Quota due so far"),
    "quota_met": ("达标", "Quota met"),
    "meetings_attended": ("参加屋场会", "Meetings attended"),
    "approved_sessions": ("认定次数", "Approved sessions"),
    # needs
    "need_id": ("需求编号", "Need"),
    "channel": ("渠道", "Channel"),
    "urgency": ("紧急程度", "Urgency"),
    "outcome": ("结果", "Outcome"),
    "submitted_at": ("提交时间", "Submitted at"),
    "accepted_at": ("受理时间", "Accepted at"),
    "first_delivered_at": ("首次服务时间", "First delivered at"),
    "due_at": ("时限", "Due at"),
    "redispatch_count": ("改派次数", "Re-dispatches"),
    "delivery_count": ("服务次数", "Deliveries"),
    "hours_delivered": ("服务时长", "Hours delivered"),
    "time_to_serve_hours": ("响应时长(小时)", "Time to serve (hours)"),
    "rating": ("评价", "Rating"),
    "submitted": ("提交数", "Submitted"),
    "accepted": ("受理数", "Accepted"),
    "rejected": ("不予受理数", "Rejected"),
    "deliveries": ("服务次数", "Deliveries"),
    # meetings
    "meeting_id": ("屋场会编号", "Meeting"),
    "started_at": ("开始时间", "Started at"),
    "held_on": ("召开日期", "Held on"),
    "attendees_count": ("参会人数", "Attendees"),
    "complete": ("五步完整", "All five steps"),
    "missing_steps": ("缺少环节", "Missing steps"),
    "concerns_raised": ("收集诉求", "Concerns raised"),
    "concerns_open": ("未办诉求", "Open concerns"),
    "meetings": ("屋场会次数", "Meetings"),
    "covered": ("已覆盖", "Covered"),
    "attendees": ("参会人次", "Attendees"),
    # rejections
    "seq": ("序号", "Seq"),
    "rejection_id": ("拒收编号", "Rejection"),
    "received_at": ("接收时间", "Received at"),
    "reason": ("原因", "Reason"),
    "event_id": ("事件编号", "Event id"),
    "event_type": ("事件类型", "Event type"),
    "subject": ("主体", "Subject"),
    "position": ("日志位置", "Log position"),
    # published documents and models
    "kind": ("类型", "Kind"),
    "document_ref": ("文件编号", "Document"),
    "as_of_position": ("计算时日志位置", "As of position"),
    "published_at": ("发布时间", "Published at"),
    "version": ("版本", "Version"),
    "effective_from": ("生效期间", "Effective from"),
    "data": ("内容", "Content"),
}
"""Column key -> (zh-CN header, en header). Unknown keys are used as they are."""


@dataclass(frozen=True, slots=True)
class Table:
    """How one endpoint's answer becomes a CSV sheet: its rows and ordered columns."""

    name: str
    columns: Sequence[str]
    rows: Iterable[Mapping[str, Any]]


def language(request: Request) -> Language:
    """Pick zh-CN or en from ``Accept-Language`` (highest q wins; zh-CN by default)."""
    header = request.headers.get("accept-language")
    if not header:
        return "zh-CN"
    best: tuple[float, Language] | None = None
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        chosen: Language | None = "zh-CN" if tag.startswith("zh") else None
        if tag.startswith("en"):
            chosen = "en"
        if chosen is not None and q > 0 and (best is None or q > best[0]):
            best = (q, chosen)
    return best[1] if best else "zh-CN"


def wanted_format(request: Request, explicit: str | None) -> Format:
    """CSV when ``format=csv`` or when ``Accept`` prefers ``text/csv``; JSON otherwise."""
    if explicit is not None:
        if explicit not in ("json", "csv"):
            raise Problem(400, "BAD_REQUEST", f"format must be json or csv, not {explicit!r}")
        return "csv" if explicit == "csv" else "json"
    accept = request.headers.get("accept", "")
    if CSV_MEDIA not in accept:
        return "json"
    best_csv = best_json = -1.0
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media == CSV_MEDIA:
            best_csv = max(best_csv, q)
        elif media in ("application/json", "*/*", "application/*"):
            best_json = max(best_json, q)
    return "csv" if best_csv > 0 and best_csv >= best_json else "json"


def header(column: str, lang: Language) -> str:
    """The CSV header of ``column`` in ``lang``."""
    labels = LABELS.get(column)
    if labels is None:
        return column
    return labels[0] if lang == "zh-CN" else labels[1]


def cell(value: Any) -> str:
    """One CSV cell: JSON text for nested values, '' for null, formulas defused."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = orjson.dumps(value).decode() if isinstance(value, dict | list | tuple) else str(value)
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def csv_bytes(table: Table, lang: Language) -> bytes:
    """Render ``table`` as UTF-8 CSV with a byte-order mark and localised headers."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([header(c, lang) for c in table.columns])
    columns = table.columns
    for row in table.rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _safe_name(name: str) -> str:
    """A file name safe in a header: ASCII letters, digits, dot, dash, underscore."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)


def respond(
    request: Request,
    body: Any,
    table: Table | None,
    fmt: Format,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Answer ``body`` as JSON, or ``table`` as CSV in the caller's language."""
    extra = dict(headers or {})
    if fmt == "csv" and table is not None:
        lang = language(request)
        extra.update(
            {
                "Content-Language": lang,
                "Content-Disposition": f'attachment; filename="{_safe_name(table.name)}.csv"',
                "Vary": "Accept, Accept-Language",
            }
        )
        return Response(
            csv_bytes(table, lang),
            media_type="text/csv; charset=utf-8; header=present",
            headers=extra,
        )
    extra.setdefault("Vary", "Accept, Accept-Language")
    return JsonResponse(body, headers=extra)


CSV_RESPONSE: dict[str, Any] = {
    "description": "JSON by default; CSV with ?format=csv or Accept: text/csv (column headers "
    "in Chinese by default, English with Accept-Language: en)",
    "content": {CSV_MEDIA: {"schema": {"type": "string"}}},
}
"""OpenAPI description of the CSV form of an answer (merged into 200 responses)."""
