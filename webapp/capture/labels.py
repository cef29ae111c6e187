"""What a test engineer says about a capture: channel labels and test metadata, one rule each.

A channel's label is its ``name`` ("Gearbox 1X+"), its measurement ``point`` (``component:node``
such as ``gearbox:1``, or a bare node number), its ``direction`` (``+X`` ... ``-RZ``, empty for a
scalar quantity such as sound pressure), a ``group`` and a ``note``. The point and direction
together are the channel's degree of freedom, written ``gearbox:1:+X``; a point given in that
combined form with no direction is split. The limits are those the exports can carry without
cutting: a UFF 58 record's entity name holds 10 characters and its node number is a whole number.

The test metadata of a capture is its ``object`` (the thing tested), ``operator``, ``notes`` and
``tags``; a capture's ``title`` is the name History shows for it (the folder and the file names
keep the name it was recorded under).

The setup (webapp/engine/schemas.py), the capture settings (webapp/capture/schemas.py), the channel
table's CSV (webapp/capture/channeltable.py) and History's edits all use these types.
"""

from __future__ import annotations

import re
import time
import unicodedata
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from webapp.capture.names import check_name
from webapp.capture.schemas import CHANNEL_MAX, ChannelNumber, Strict, refuse
from webapp.capture.store import id_slug

LABEL_FIELDS = ("name", "point", "direction", "group", "note")
NAME_MAX = 64
GROUP_MAX = 32
NOTE_MAX = 200
COMPONENT_MAX = 10
"""UFF 58's response entity name is 10 characters."""
NODE_MAX = 2_147_483_647
"""UFF 58's node numbers are 10-digit integers."""

OBJECT_MAX = 80
OPERATOR_MAX = 64
NOTES_MAX = 2000
TAG_MAX = 32
TAGS_MAX = 20
TITLE_MAX = 120
TEMPLATE_MAX = 100

DIRECTIONS = ("+X", "-X", "+Y", "-Y", "+Z", "-Z", "+RX", "-RX", "+RY", "-RY", "+RZ", "-RZ")
"""Translations and rotations; an empty direction is a scalar (a microphone, a voltage)."""
_AXES = ("X", "Y", "Z", "RX", "RY", "RZ")
UFF_DIRECTION = {
    "": 0,
    **{d: (1 if d[0] == "+" else -1) * (_AXES.index(d[1:]) + 1) for d in DIRECTIONS},
}
"""UFF 58 direction codes: 0 scalar, 1..3 +X..+Z, 4..6 +RX..+RZ, negative for minus."""

_COMPONENT = re.compile(r"[A-Za-z0-9_.-]{1,10}")
TEMPLATE_FIELDS = ("object", "operator", "date", "time", "n", "name")


def _text(value: Any, max_len: int, one_line: bool = True) -> str:
    """Text normalised to NFC, white space runs made one space (``one_line``) or trimmed; no
    control characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise refuse("must be text")
    text = unicodedata.normalize("NFC", value)
    text = " ".join(text.split()) if one_line else text.strip().replace("\r\n", "\n")
    bad = sorted({c for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t"})
    if bad:
        raise refuse("must not hold control characters")
    if len(text) > max_len:
        raise refuse(f"must be at most {max_len} characters")
    return text


def _direction_text(value: Any) -> str:
    text = _text(value, 8).upper().replace(" ", "")
    if text in ("", "S", "SCALAR"):
        return ""
    if text[0] not in "+-":
        text = "+" + text
    if text not in DIRECTIONS:
        raise refuse(f"must be one of {', '.join(DIRECTIONS)}, or empty for a scalar")
    return text


def _point_text(value: Any) -> str:
    """``component:node`` or ``node``; the combined ``component:node:direction`` is split by
    :class:`ChannelLabel` before this sees it."""
    text = _text(value, COMPONENT_MAX + 12).replace(" ", "")
    if not text:
        return ""
    component, _, node = text.rpartition(":")
    if component and not _COMPONENT.fullmatch(component):
        raise refuse(
            f"component {component!r} must be 1 to {COMPONENT_MAX} letters, digits or . _ -"
            " (the point is written component:node, e.g. gearbox:1)"
        )
    if not node.isascii() or not node.isdigit() or not 1 <= int(node) <= NODE_MAX:
        raise refuse(
            f"node {node!r} must be a whole number from 1 (the point is written component:node, "
            "e.g. gearbox:1)"
        )
    return f"{component}:{int(node)}" if component else str(int(node))


def _text_type(max_len: int, one_line: bool = True) -> Any:
    return Annotated[str, BeforeValidator(lambda v: _text(v, max_len, one_line))]


LabelName = _text_type(NAME_MAX)
Group = _text_type(GROUP_MAX)
Note = _text_type(NOTE_MAX)
Point = Annotated[str, BeforeValidator(_point_text)]
Direction = Annotated[str, BeforeValidator(_direction_text)]


def split_dof(point: Any, direction: Any) -> tuple[Any, Any]:
    """A point written ``gearbox:1:+X`` (and no direction) as ("gearbox:1", "+X")."""
    if isinstance(point, str) and not direction and point.count(":") == 2:
        head, _, tail = point.rpartition(":")
        try:
            return head, _direction_text(tail)
        except Exception:
            return point, direction
    return point, direction


class LabelFields(Strict):
    """The label fields, for a model that has them beside others (a setup channel row)."""

    name: LabelName = ""
    point: Point = ""
    direction: Direction = ""
    group: Group = ""
    note: Note = ""

    @model_validator(mode="before")
    @classmethod
    def _combined_dof(cls, data: Any) -> Any:
        if isinstance(data, dict) and "point" in data:
            point, direction = split_dof(data.get("point"), data.get("direction"))
            if point is not data.get("point"):
                data = {**data, "point": point, "direction": direction}
        return data


class ChannelLabel(LabelFields):
    """One labelled channel as capture.json's ``channels`` lists it (module number as in the
    capture's ``modules``)."""

    module: Annotated[int, Field(ge=1, le=CHANNEL_MAX)]
    channel: ChannelNumber


class LabelRow(LabelFields):
    """A channel's labels in the capture settings (by channel number, within a module)."""

    channel: ChannelNumber


def dof(label: dict[str, Any]) -> str:
    """``gearbox:1:+X``, ``cabin:3`` (scalar) or "" (no point)."""
    point, direction = label.get("point") or "", label.get("direction") or ""
    if not point:
        return direction
    return f"{point}:{direction}" if direction else point


def uff_dof(label: dict[str, Any] | None) -> tuple[str, int, int]:
    """(entity name, node, direction code) for a UFF 58 record; ("", 0, 0) with no point."""
    point = (label or {}).get("point") or ""
    component, _, node = point.rpartition(":")
    code = UFF_DIRECTION.get((label or {}).get("direction") or "", 0)
    return component, int(node) if node else 0, code


def has_label(row: dict[str, Any]) -> bool:
    return any(row.get(k) for k in LABEL_FIELDS)


def label_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row's channel number and label fields (a setup row holds more)."""
    return {"channel": row["channel"], **{k: row.get(k) or "" for k in LABEL_FIELDS}}


def labelled_channels(
    modules: list[tuple[int, str]], labels: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """capture.json's ``channels``: the labelled channels of ``modules`` ((number, address)
    pairs), each with its module number, in module and channel order."""
    out = []
    for number, address in modules:
        for row in sorted(labels.get(address, []), key=lambda r: r["channel"]):
            if has_label(row):
                out.append({"module": number, "channel": row["channel"],
                            **{k: row.get(k) or "" for k in LABEL_FIELDS}})  # fmt: skip
    return out


# --- test metadata ----------------------------------------------------------------------------


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [t for t in value.split(",")]
    if not isinstance(value, list):
        raise refuse("must be a list of tags (or text with tags separated by commas)")
    out: list[str] = []
    for i, raw in enumerate(value):
        if not isinstance(raw, str):
            raise refuse(f"tag {i + 1} must be text")
        tag = " ".join(unicodedata.normalize("NFC", raw).split())
        if not tag:
            continue
        if len(tag) > TAG_MAX:
            raise refuse(f"tag {tag[:20]!r}… is longer than {TAG_MAX} characters")
        if any(unicodedata.category(c) == "Cc" for c in tag):
            raise refuse(f"tag {i + 1} must not hold control characters")
        if tag.casefold() not in (t.casefold() for t in out):
            out.append(tag)
    if len(out) > TAGS_MAX:
        raise refuse(f"holds {len(out)} tags; at most {TAGS_MAX}")
    return out


def _template(value: Any) -> str:
    text = _text(value, TEMPLATE_MAX)
    for field in re.findall(r"\{([^{}]*)\}", text):
        if field not in TEMPLATE_FIELDS:
            raise refuse(
                f"has an unknown field {{{field}}}; use "
                + ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
            )
    if re.sub(r"\{[^{}]*\}", "", text).count("{") or text.count("}") > text.count("{"):
        raise refuse("has an unmatched brace")
    return text


Tags = Annotated[list[str], BeforeValidator(_tags)]
NameTemplate = Annotated[str, BeforeValidator(_template)]
Title = _text_type(TITLE_MAX)
ObjectText = _text_type(OBJECT_MAX)
OperatorText = _text_type(OPERATOR_MAX)
NotesText = _text_type(NOTES_MAX, one_line=False)


class TestInfo(Strict):
    """A capture's test metadata (capture.json ``test``)."""

    __test__ = False  # not a test case, whatever its name says

    object: ObjectText = ""
    operator: OperatorText = ""
    notes: NotesText = ""
    tags: Tags = []


class TestSetup(TestInfo):
    """The test metadata the Setup page holds for the next captures, with the template their
    names are made from (empty: the name the start request gives)."""

    name_template: NameTemplate = ""


class TestEdit(Strict):
    """A change of a capture's test metadata: the keys given replace the capture's."""

    __test__ = False

    object: ObjectText | None = None
    operator: OperatorText | None = None
    notes: NotesText | None = None
    tags: Tags | None = None


TEST_FIELDS = ("object", "operator", "notes", "tags")


def info_json(info: Strict) -> dict[str, Any]:
    return {k: getattr(info, k) for k in TEST_FIELDS}


def merge_test(base: dict[str, Any] | None, change: Strict | None) -> dict[str, Any]:
    """``base`` test metadata with the fields ``change`` gave replaced (the four keys always)."""
    out = {k: (base or {}).get(k, [] if k == "tags" else "") for k in TEST_FIELDS}
    if change is not None:
        for key in change.model_fields_set & set(TEST_FIELDS):
            value = getattr(change, key)
            out[key] = value if value is not None else ([] if key == "tags" else "")
    return out


def _slug(text: str) -> str:
    """A template value made fit for a file name: spaces and what the name rule refuses become
    ``_``."""
    out = "".join(c if c.isalnum() or c in ".-" else "_" for c in text)
    return re.sub(r"_+", "_", out).strip("_.")


def name_from_template(
    template: str,
    test: dict[str, Any],
    name: str,
    taken: set[str],
    now: float | None = None,
) -> str:
    """The capture name ``template`` makes: ``{object}``, ``{operator}``, ``{date}``
    (YYYYMMDD, UTC like capture ids), ``{time}`` (HHMMSS), ``{name}`` (the request's name) and
    ``{n}``, the lowest number from 1 that gives a name not in ``taken`` (the names of the
    captures already in the folder). Raises ValueError in the name rule's words."""
    t = time.gmtime(time.time() if now is None else now)
    values = {
        "object": _slug(str(test.get("object") or "")) or "object",
        "operator": _slug(str(test.get("operator") or "")) or "operator",
        "date": time.strftime("%Y%m%d", t),
        "time": time.strftime("%H%M%S", t),
        "name": _slug(name) or "capture",
    }

    def render(n: int) -> str:
        text = re.sub(r"\{([a-z]+)\}", lambda m: str(n) if m[1] == "n" else values[m[1]], template)
        return check_name(text, "the name the file-name template makes")

    if "{n}" not in template:
        return render(0)
    folded = {t.casefold() for t in taken}
    n = 1
    while id_slug(render(n)).casefold() in folded:
        n += 1
    return render(n)


def names_in(folder_ids: list[str]) -> set[str]:
    """The capture names inside capture ids (``20261123-221530-NAME`` or ``...-NAME-2``), for
    ``name_from_template``'s ``taken``: the slug after the time stamp (see ``id_slug``)."""
    out = set()
    for cid in folder_ids:
        m = re.fullmatch(r"\d{8}-\d{6}-(.+?)(?:-\d+)?", cid)
        if m:
            out.add(m[1])
    return out


def title_of(meta: dict[str, Any] | None, name: str) -> str:
    """The name History shows: capture.json's ``title``, else the recorded ``name``."""
    title = (meta or {}).get("title")
    return title if isinstance(title, str) and title else name


def test_of(meta: dict[str, Any] | None) -> dict[str, Any]:
    """capture.json's ``test`` with its four keys (empty when absent or not what it should be:
    an older capture has none)."""
    test = (meta or {}).get("test")
    test = test if isinstance(test, dict) else {}
    tags = test.get("tags")
    out: dict[str, Any] = {k: str(test.get(k) or "") for k in ("object", "operator", "notes")}
    out["tags"] = [str(t) for t in tags] if isinstance(tags, list) else []
    return out
