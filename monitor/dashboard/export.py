"""One export path for every table: CSV as UTF-8 with a byte order mark (so spreadsheet
programs read Vietnamese names right), values exactly as `qrgate report --format csv`
writes them (`monitor.reporting.output.csv_value`: text a spreadsheet would run as a formula made
inert, control characters removed)."""

from __future__ import annotations

import csv
import io
from datetime import tzinfo

from starlette.responses import Response

from monitor.reporting.output import csv_value
from monitor.reporting.reports import Report

BOM = "\ufeff"


def csv_text(report: Report, zone: tzinfo) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(column.key for column in report.columns)
    for row in report.rows:
        writer.writerow(
            csv_value(getattr(row, column.key), column, zone) for column in report.columns
        )
    return BOM + buffer.getvalue()


def csv_response(report: Report, zone: tzinfo, filename: str) -> Response:
    return Response(
        csv_text(report, zone).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.csv"',
            "Cache-Control": "no-store",
        },
    )
