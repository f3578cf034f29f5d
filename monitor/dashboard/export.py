"""One export path for every table: CSV as UTF-8 with a byte order mark (so spreadsheet
programs read Vietnamese names right), values exactly as `qrgate report --format csv`
writes them (`monitor.reporting.output.as_csv`: text a spreadsheet would run as a formula made
inert, control characters removed)."""

from __future__ import annotations

from datetime import tzinfo

from starlette.responses import Response

from monitor.reporting.output import as_csv
from monitor.reporting.reports import Report

BOM = "\ufeff"


def csv_text(report: Report, zone: tzinfo) -> str:
    # CRLF, as spreadsheet programs write CSV themselves.
    return BOM + as_csv(report, zone, line_end="\r\n")


def csv_response(report: Report, zone: tzinfo, filename: str) -> Response:
    return Response(
        csv_text(report, zone).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.csv"',
            "Cache-Control": "no-store",
        },
    )
