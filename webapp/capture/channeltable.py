"""The channel table as CSV, so a table prepared in a spreadsheet can be loaded.

One row per channel: ``module`` (the module's address, as the rig names it), ``channel`` (its
number) and the label fields of :mod:`webapp.capture.labels` (``name``, ``point``,
``direction``, ``group``, ``note``). The header row is required; the columns may come in any
order and the label columns may be left out; commas, semicolons and tabs all separate (a
spreadsheet saved in a locale with a decimal comma writes semicolons). A byte-order mark is
skipped. A bad cell is refused as ``row 4, column point: ...`` — rows counted as the spreadsheet
counts them, the header being row 1 — before anything is changed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webapp.capture.labels import LABEL_FIELDS, LabelFields
from webapp.capture.schemas import FieldError, _address, address_key, validate

COLUMNS = ("module", "channel", *LABEL_FIELDS)
REQUIRED = ("module", "channel")
MAX_BYTES = 512 << 10
MAX_ROWS = 4096


class TableError(FieldError):
    """A refused channel table: ``row`` (1 = the header) and ``column`` say where."""

    def __init__(self, row: int, column: str | None, message: str) -> None:
        where = f"row {row}" + (f", column {column}" if column else "")
        super().__init__(f"csv.row{row}" + (f".{column}" if column else ""), f"{where}: {message}")
        self.row = row
        self.column = column


@dataclass
class TableRow:
    row: int
    """The row number in the file (the header is row 1)."""
    module: str
    channel: int
    label: dict[str, str]


def parse_csv(text: str) -> list[TableRow]:
    """The rows of a channel table, every cell checked by the label rules; raises
    :class:`TableError` for the first bad one."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise TableError(1, None, f"the file is larger than {MAX_BYTES // 1024} KiB")
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise TableError(1, None, f"the header row is missing; give {', '.join(COLUMNS)}")
    delimiter = max(",;\t", key=lines[0].count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader)]
    for i, column in enumerate(header):
        if column not in COLUMNS:
            raise TableError(
                1, column or f"#{i + 1}", f"unknown column; the columns are {', '.join(COLUMNS)}"
            )
        if header.index(column) != i:
            raise TableError(1, column, "is given twice")
    for column in REQUIRED:
        if column not in header:
            raise TableError(1, column, "is missing from the header")
    rows: list[TableRow] = []
    seen: dict[tuple[str, int], int] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(rows) >= MAX_ROWS:
            raise TableError(number, None, f"more than {MAX_ROWS} rows")
        if len(cells) > len(header):
            raise TableError(number, None, f"{len(cells)} cells for {len(header)} columns")
        values = dict(zip(header, [c.strip() for c in cells], strict=False))
        row = _row(number, values)
        key = (row.module, row.channel)
        if key in seen:
            raise TableError(
                number,
                "channel",
                f"{row.module} channel {row.channel} is already in row {seen[key]}",
            )
        seen[key] = number
        rows.append(row)
    return rows


def labels_by_module(rows: list[TableRow], modules: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The capture settings' ``labels`` of a table for these module addresses (a row naming
    another module is refused)."""
    keys = {address_key(a): a for a in modules}
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        address = keys.get(address_key(row.module))
        if address is None:
            raise TableError(
                row.row, "module", f"{row.module} is not one of the modules ({', '.join(modules)})"
            )
        out.setdefault(address, []).append({"channel": row.channel, **row.label})
    return out


def read_table(path: Path, modules: list[str]) -> dict[str, list[dict[str, Any]]]:
    """A channel table file's labels for these modules (the ``capture`` command's
    ``--channel-table``)."""
    return labels_by_module(parse_csv(path.read_text(encoding="utf-8-sig")), modules)


def _row(number: int, values: dict[str, str]) -> TableRow:
    module = values.get("module", "")
    if not module:
        raise TableError(number, "module", "is empty; give the module's address")
    try:
        module = _address(module)
    except ValueError as exc:
        raise TableError(number, "module", _message(exc)) from None
    text = values.get("channel", "")
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 64:
        raise TableError(number, "channel", f"{text!r} is not a channel number from 1 to 64")
    label = {k: values.get(k, "") for k in LABEL_FIELDS}
    try:
        checked = validate(LabelFields, label)
    except FieldError as exc:
        column = (exc.field or "").split(".")[0] or None
        message = exc.message
        if column and message.startswith(column + " "):
            message = message[len(column) + 1 :]
        raise TableError(number, column, message) from None
    return TableRow(number, module, int(text), checked.model_dump())


def _message(exc: Exception) -> str:
    ctx = getattr(exc, "context", None) or {}
    return str(ctx.get("message") or exc)


def write_csv(channels: dict[str, list[dict[str, Any]]]) -> str:
    """The channel table of a setup's ``channels`` (address -> rows) as CSV text."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for address, rows in channels.items():
        for row in sorted(rows, key=lambda r: r["channel"]):
            writer.writerow([address, row["channel"], *(row.get(k) or "" for k in LABEL_FIELDS)])
    return out.getvalue()
