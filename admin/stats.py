"""``GET /api/stats``: imaging statistics as JSON, CSV or XLSX (issue 20 item 1).

``report`` is one of volume, shares, storage, sources, turnaround; ``from`` and
``to`` are local dates (inclusive, default: the last 30 days); ``period`` day,
week or month; ``by`` none, modality, station, referring, institution;
``format`` json, csv or xlsx. The access is audited (no patient is named, but
it is a read of the archive's contents).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.principal import Principal
from pacs.i18n import negotiate, translate
from pacs.stats import GroupBy, Period, Report, StatsError, StatsQuery
from pacs.stats.export import to_csv, to_xlsx

router = APIRouter()

Reader = Annotated[Principal, Depends(authorize("stats"))]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/api/stats", response_model=None)
def get_stats(
    request: Request,
    principal: Reader,
    report: Report = Report.VOLUME,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    period: Period = Period.DAY,
    by: GroupBy = GroupBy.NONE,
    modality: Annotated[str, Query(max_length=16, pattern=r"^[A-Z0-9_ ]*$")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> Response | dict[str, object]:
    """One statistics report over a range of local days."""
    archive: Archive = request.app.state.archive
    lang = negotiate(request.cookies, request.headers.get("accept-language"))
    end = end or datetime.now(ZoneInfo(archive.settings.stats_timezone)).date()
    start = start or end - timedelta(days=29)
    query = StatsQuery(report, start, end, period, by, modality, limit)
    try:
        result = archive.stats.run(query)
    except StatsError as exc:
        message = translate("stats.bad_range", lang, reason=str(exc))
        raise HTTPException(status.HTTP_400_BAD_REQUEST, message) from exc
    archive.audit.record(principal, "stats", detail=str(request.url.query)[:500])
    if format == "json":
        return result.as_json()
    name = f"pacs-{report}-{start.isoformat()}-{end.isoformat()}"
    if format == "csv":
        body, media = to_csv(result, lang), "text/csv; charset=utf-8"
    else:
        body, media = to_xlsx(result, lang), XLSX
    disposition = f'attachment; filename="{name}.{format}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})
