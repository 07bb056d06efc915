"""Posting one payment file (CSV) from the inbox.

In one transaction, under the posting lock: the file's content hash is looked up (a file already
recorded posts nothing), its rows validated, accepted rows posted (payment + allocation),
rejected rows quarantined, and the file recorded with its counts. Only after the commit is the
file moved to processed/ (or rejected/ when it could not be read at all). A crash before the
commit leaves nothing; a crash after it leaves the file in the inbox, and the next run finds its
hash recorded and only moves it. Nothing is ever posted twice, no row dropped silently
(accepted + rejected = rows, a CHECK on payment_files).

CSV format: a header row with at least `utr,loan_id,amount,paid_on` (case and spaces ignored,
other columns kept in the quarantine's raw row); UTF-8 (a BOM is accepted).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ...db.collections import files as files_db
from ...db.collections import payments as payments_db
from ...domain.collections_payments import (
    FILE_ENCODING,
    FILE_MISSING_COLUMNS,
    FILE_NOT_CSV,
    REQUIRED_COLUMNS,
    Bounds,
    RejectedRow,
    validate_rows,
)

PROCESSED = "processed"
REJECTED = "rejected"


class UnreadableFile(Exception):
    def __init__(self, reason_code: str, field: str | None, value: str | None, message: str):
        super().__init__(message)
        self.reason_code, self.field, self.value = reason_code, field, value


@dataclass
class FileReport:
    name: str
    sha256: str
    status: str  # posted | rejected | duplicate
    file_id: int | None = None
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    accepted_minor: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    overpaid: list[dict] = field(default_factory=list)
    reason: str | None = None
    moved_to: str | None = None
    duration_seconds: float = 0.0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_rows(content: bytes) -> list[dict[str, str]]:
    """The file's data rows as dicts keyed by the normalised header, or UnreadableFile."""
    if b"\x00" in content:
        raise UnreadableFile(FILE_NOT_CSV, None, None, "the file is binary (NUL bytes), not CSV")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableFile(
            FILE_ENCODING, None, f"byte {error.start}", f"the file is not UTF-8 ({error.reason})"
        ) from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = next(reader, None)
        if header is None:
            raise UnreadableFile(FILE_MISSING_COLUMNS, "header", "", "the file is empty")
        names = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise UnreadableFile(
                FILE_MISSING_COLUMNS,
                "header",
                ",".join(header),
                f"the header lacks {', '.join(missing)} (needs {', '.join(REQUIRED_COLUMNS)})",
            )
        width, rows = len(names), []
        for values in reader:
            if not "".join(values).strip():
                continue  # blank line (or only separators and spaces)
            row = dict(zip(names, values, strict=False))
            if len(values) != width:
                row["_columns"] = str(len(values))
            rows.append(row)
        return rows
    except csv.Error as error:
        raise UnreadableFile(FILE_NOT_CSV, None, None, f"not CSV: {error}") from None


def _move(path: Path, folder: str, sha256: str) -> str | None:
    target_dir = path.parent / folder
    target_dir.mkdir(exist_ok=True)
    target = target_dir / f"{sha256[:12]}-{path.name}"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None  # another run moved it already
    return str(target)


def process_payment_file(
    engine: sa.Engine,
    path: Path,
    *,
    bounds: Bounds,
    timezone: str,
    actor: str,
    run_id: str | None,
) -> FileReport:
    started = time.monotonic()
    content = path.read_bytes()
    sha256 = hashlib.sha256(content).hexdigest()
    received_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    received_on = received_at.astimezone(ZoneInfo(timezone)).date()
    report = FileReport(path.name, sha256, "posted")
    with engine.begin() as conn:
        payments_db.lock_posting(conn)
        known = files_db.recorded_file(conn, sha256)
        if known is not None:
            report.status, report.file_id = "duplicate", known["id"]
            report.reason = (
                f"content already recorded as file {known['id']} ({known['name']}, "
                f"{known['status']}): nothing posted"
            )
            folder = REJECTED if known["status"] == "rejected" else PROCESSED
        else:
            folder = _post(conn, report, content, received_at, received_on, bounds, actor, run_id)
    report.moved_to = _move(path, folder, sha256)
    report.duration_seconds = time.monotonic() - started
    return report


def _post(conn, report, content, received_at, received_on, bounds, actor, run_id) -> str:
    try:
        rows = read_rows(content)
    except UnreadableFile as error:
        report.status, report.reason = "rejected", f"{error.reason_code}: {error}"
        report.file_id = files_db.record_file(
            conn, name=report.name, sha256=report.sha256, received_at=received_at,
            status="rejected", reason=report.reason, run_id=run_id,
        )  # fmt: skip
        payments_db.quarantine(
            conn,
            [RejectedRow(0, {"file": report.name}, error.reason_code, error.field, error.value)],
            file_id=report.file_id,
        )
        report.rejected_by_reason = {error.reason_code: 1}
        return REJECTED
    validation = validate_rows(
        rows,
        received_on=received_on,
        loan_statuses=payments_db.known_loans(
            conn,
            (
                int(r["loan_id"])
                for r in rows
                if (r.get("loan_id") or "").strip().isdigit() and len(r["loan_id"].strip()) <= 18
            ),
        ),  # fmt: skip
        recorded_utrs=payments_db.recorded_utrs(
            conn, ((r.get("utr") or "").strip().upper() for r in rows)
        ),
        bounds=bounds,
    )
    report.rows = len(rows)
    report.accepted, report.rejected = len(validation.accepted), len(validation.rejected)
    report.accepted_minor = validation.accepted_minor
    report.rejected_by_reason = dict(validation.by_reason)
    report.file_id = files_db.record_file(
        conn, name=report.name, sha256=report.sha256, received_at=received_at, status="posted",
        rows=report.rows, accepted=report.accepted, rejected=report.rejected,
        accepted_minor=report.accepted_minor, run_id=run_id,
    )  # fmt: skip
    posted = payments_db.post_payments(
        conn, validation.accepted, source="file", posted_by=actor, run_id=run_id,
        file_id=report.file_id,
    )  # fmt: skip
    payments_db.quarantine(conn, validation.rejected, file_id=report.file_id)
    report.overpaid = posted.overpaid
    return PROCESSED
