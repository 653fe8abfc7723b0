"""CSV contact lists (Google, Outlook, mapped, dav-cms export) to vCard 3.0 items.

Column layouts are recognised by the header row: Google Contacts (the older
``Name, Given Name, Family Name, E-mail 1 - Type, E-mail 1 - Value`` and the newer
``First Name, Last Name, E-mail 1 - Label``), Outlook (``First Name, Last Name,
E-mail Address, Business Phone, Home Street, Company, Job Title, Notes``) and the
dav-cms export layout, whose headers are column specs themselves (there a cell
that begins with one ``'`` before ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return loses that quote, which the export adds against spreadsheet formulas: see
:mod:`dav_cms.importers.formulas`). Other files
need a ``mapping``: a dict (or JSON file, see :func:`load_mapping`) from column
header to column spec; the mapping is also applied on top of a recognised layout.

Column spec grammar: ``PROP[.PART][;TYPE=t1,t2][#KEY]``

* ``PROP`` -- ``FN``, ``N``, ``NICKNAME``, ``ORG``, ``TITLE``, ``ROLE``, ``BDAY``,
  ``NOTE``, ``CATEGORIES``, ``UID``, ``EMAIL``, ``TEL``, ``URL``, ``ADR``, any
  ``X-NAME``, or ``VCARD`` (the cell holds a whole vCard). Other names become
  ``X-`` properties (``shoe-size`` -> ``X-SHOE-SIZE``).
* ``PART`` -- for ``N``: family, given, additional, prefix, suffix; for ``ADR``:
  box, extended, street, city, region, code, country; for ``ORG``: name, unit.
  ``type`` (any multi-valued property) takes TYPE values from the cell.
* ``#KEY`` -- columns with the same property and key (default: the TYPE list)
  form one property, e.g. ``ADR.street;TYPE=home`` and ``ADR.city;TYPE=home``.

Example mapping: ``{"Mail": "EMAIL;TYPE=work", "Handy": "TEL;TYPE=cell",
"Strasse": "ADR.street;TYPE=home", "Ort": "ADR.city;TYPE=home", "Memo": null}``.

A row becomes one vCard 3.0 (``FN`` is composed from the name parts, the company,
e-mail or phone when there is no name column); a row without any name, company,
e-mail or phone is skipped with its line number. Cards get stable UIDs as in
:mod:`dav_cms.importers.vcf`.
"""

from __future__ import annotations

import csv as _csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dav_cms.importers import ParseResult, formulas
from dav_cms.importers._common import Collector
from dav_cms.importers.vcf import normalise_card

PARTS: dict[str, tuple[str, ...]] = {
    "N": ("family", "given", "additional", "prefix", "suffix"),
    "ADR": ("box", "extended", "street", "city", "region", "code", "country"),
    "ORG": ("name", "unit"),
}
SINGLE = ("UID", "FN", "NICKNAME", "TITLE", "ROLE", "BDAY", "NOTE", "CATEGORIES")
MULTI = ("EMAIL", "TEL", "URL", "ADR")
KNOWN = frozenset((*SINGLE, *MULTI, "N", "ORG", "VCARD"))
_UNESCAPED = frozenset({"EMAIL", "TEL", "URL", "BDAY"})
_TYPE_WORDS = {"*": "pref", "mobile": "cell", "business": "work", "e-mail": "internet"}
_SPEC = re.compile(r"^([A-Za-z0-9-]+)(?:\.([a-z]+))?((?:;[A-Za-z-]+=[^;#]*)*)(?:#(.+))?$")
_GOOGLE_NUMBERED = re.compile(r"^(E-mail|Phone|Website|Address|Organization) (\d+) - (.+)$")
_GOOGLE_PARTS = {
    "Type": ".type",
    "Label": ".type",
    "Value": "",
    "Street": ".street",
    "City": ".city",
    "PO Box": ".box",
    "Region": ".region",
    "Postal Code": ".code",
    "Country": ".country",
    "Extended Address": ".extended",
}
_GOOGLE_PROPS = {"E-mail": "EMAIL", "Phone": "TEL", "Website": "URL", "Address": "ADR"}
_GOOGLE = {
    "Name": "FN",
    "Given Name": "N.given",
    "Additional Name": "N.additional",
    "Family Name": "N.family",
    "First Name": "N.given",
    "Middle Name": "N.additional",
    "Last Name": "N.family",
    "Name Prefix": "N.prefix",
    "Name Suffix": "N.suffix",
    "Nickname": "NICKNAME",
    "Birthday": "BDAY",
    "Notes": "NOTE",
    "Group Membership": "CATEGORIES",
    "Labels": "CATEGORIES",
    "Organization Name": "ORG.name",
    "Organization Title": "TITLE",
    "Organization Department": "ORG.unit",
    "Organization 1 - Name": "ORG.name",
    "Organization 1 - Title": "TITLE",
    "Organization 1 - Department": "ORG.unit",
}
_OUTLOOK = {
    "Title": "N.prefix",
    "First Name": "N.given",
    "Middle Name": "N.additional",
    "Last Name": "N.family",
    "Suffix": "N.suffix",
    "Nickname": "NICKNAME",
    "Company": "ORG.name",
    "Department": "ORG.unit",
    "Job Title": "TITLE",
    "Business Fax": "TEL;TYPE=work,fax",
    "Business Phone": "TEL;TYPE=work,voice",
    "Business Phone 2": "TEL;TYPE=work,voice",
    "Company Main Phone": "TEL;TYPE=work",
    "Home Fax": "TEL;TYPE=home,fax",
    "Home Phone": "TEL;TYPE=home,voice",
    "Home Phone 2": "TEL;TYPE=home,voice",
    "Mobile Phone": "TEL;TYPE=cell",
    "Pager": "TEL;TYPE=pager",
    "Car Phone": "TEL;TYPE=car",
    "Primary Phone": "TEL;TYPE=pref",
    "Other Phone": "TEL",
    "Other Fax": "TEL;TYPE=fax",
    "ISDN": "TEL;TYPE=isdn",
    "E-mail Address": "EMAIL;TYPE=internet",
    "E-mail 2 Address": "EMAIL;TYPE=internet",
    "E-mail 3 Address": "EMAIL;TYPE=internet",
    "Notes": "NOTE",
    "Birthday": "BDAY",
    "Web Page": "URL",
    "Categories": "CATEGORIES",
}
for _where, _type in (("Business", ";TYPE=work"), ("Home", ";TYPE=home"), ("Other", "#other")):
    for _column, _part in (
        ("Street", "street"),
        ("Street 2", "street"),
        ("Street 3", "street"),
        ("City", "city"),
        ("State", "region"),
        ("Postal Code", "code"),
        ("Country/Region", "country"),
        ("Country", "country"),
        ("PO Box", "box"),
        ("Address PO Box", "box"),
    ):
        _OUTLOOK[f"{_where} {_column}"] = f"ADR.{_part}{_type}"


@dataclass(frozen=True)
class Spec:
    """A parsed column spec (see the module docstring).

    Attributes:
        prop: Upper-case property name.
        part: The structured part, ``"type"``, or empty for the value.
        types: TYPE values from the spec.
        key: Which property instance the column belongs to.
    """

    prop: str
    part: str = ""
    types: tuple[str, ...] = ()
    key: str = ""


def parse_spec(text: str, *, known_only: bool = False) -> Spec:
    """Parse a column spec such as ``EMAIL;TYPE=work`` or ``ADR.city#2``.

    Args:
        text: The spec.
        known_only: Reject names that would become ``X-`` properties.

    Returns:
        The spec.

    Raises:
        ValueError: When the spec is malformed.
    """
    match = _SPEC.match(text.strip())
    if not match:
        msg = f"invalid column spec {text!r}"
        raise ValueError(msg)
    prop, part = match.group(1).upper(), match.group(2) or ""
    params, key = match.group(3), match.group(4)
    if prop not in KNOWN and not prop.startswith("X-"):
        if known_only:
            msg = f"unknown property in column spec {text!r}"
            raise ValueError(msg)
        prop = f"X-{prop}"
    allowed = PARTS.get(prop, ()) + (("type",) if prop in MULTI else ())
    if part and part not in allowed:
        msg = f"invalid part {part!r} in column spec {text!r}"
        raise ValueError(msg)
    types: list[str] = []
    for param in filter(None, params.split(";")):
        name, _, values = param.partition("=")
        if name.upper() != "TYPE":
            msg = f"only TYPE parameters are supported in column spec {text!r}"
            raise ValueError(msg)
        types.extend(_type_tokens(values))
    return Spec(prop, part, tuple(types), key if key is not None else ",".join(types))


def load_mapping(path: str | Path) -> dict[str, str | None]:
    """Read a mapping file: a JSON object from column header to column spec (or null).

    Raises:
        ValueError: When the file is not such an object or a spec is invalid.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        msg = f"{path}: a mapping must be a JSON object"
        raise ValueError(msg)
    for column, spec in data.items():
        if spec is not None and not isinstance(spec, str):
            msg = f"{path}: the spec of column {column!r} must be a string or null"
            raise ValueError(msg)
        if spec:
            parse_spec(spec)
    return data


def column_specs(
    header: list[str], mapping: Mapping[str, str | None] | None = None
) -> list[Spec | None]:
    """The spec of every column: from a recognised layout, then ``mapping``.

    Raises:
        ValueError: When a mapping spec is invalid.
    """
    names = [name.strip() for name in header]
    specs: list[Spec | None] = [None] * len(names)
    own = _own_specs(names)
    if own:
        specs = own
    else:
        outlook = any(name in ("E-mail Address", "Business Phone", "Home Street") for name in names)
        table = _OUTLOOK if outlook else _GOOGLE
        for index, name in enumerate(names):
            numbered = _GOOGLE_NUMBERED.match(name)
            text = table.get(name)
            if text is None and numbered and not outlook and numbered.group(1) in _GOOGLE_PROPS:
                part = _GOOGLE_PARTS.get(numbered.group(3))
                if part is not None:
                    text = f"{_GOOGLE_PROPS[numbered.group(1)]}{part}#{numbered.group(2)}"
            specs[index] = parse_spec(text) if text else None
    for index, name in enumerate(names):
        if mapping is not None and name in mapping:
            spec = mapping[name]
            specs[index] = parse_spec(spec) if spec else None
    return specs


def is_export_layout(header: list[str]) -> bool:
    """Whether every header is a column spec (the dav-cms export layout)."""
    return bool(_own_specs([name.strip() for name in header]))


def _own_specs(names: list[str]) -> list[Spec | None]:
    """The specs the headers are themselves, or ``[]`` when one is not a spec."""
    try:
        own = [parse_spec(name, known_only=True) if name else None for name in names]
    except ValueError:
        return []
    return own if any(own) else []


def parse_csv(
    text: str, mapping: Mapping[str, str | None] | None = None, *, strict: bool = False
) -> ParseResult:
    """Parse a CSV contact list into one vCard 3.0 entry per row.

    Args:
        text: The file content, decoded (see :mod:`dav_cms.importers.decoding`; a BOM,
            quoted newlines, ``,``/``;``/tab delimiters are fine).
        mapping: Column header -> column spec, applied on top of the recognised layout.
        strict: Raise on the first problem instead of skipping the row.

    Returns:
        The cards (position = data row number, line = its first line) and skipped rows.

    Raises:
        ValueError: In strict mode, or for an invalid mapping.
    """
    collector = Collector("row", strict=strict)
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = _csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    specs: list[Spec | None] | None = None
    exported = False
    position = line = 0
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except _csv.Error as exc:
            collector.skip(position + 1 if specs is not None else 0, line, f"CSV error: {exc}")
            position += specs is not None
            continue
        if specs is None:
            specs, exported = column_specs(row, mapping), is_export_layout(row)
            if not any(specs):
                collector.skip(0, line, "no known columns in the header: give a mapping")
                return collector.result
            continue
        if not any(cell.strip() for cell in row):
            continue
        position += 1
        if exported:
            row = [formulas.restore(cell) for cell in row]
        try:
            card = build_card(specs, row)
            if card is None:
                collector.skip(position, line, "no name, company, e-mail or phone")
                continue
            uid, card_text = normalise_card(card)
        except ValueError as exc:
            collector.skip(position, line, str(exc))
            continue
        collector.add(uid, card_text, "VCARD", position, line)
    return collector.result


def build_card(specs: list[Spec | None], row: list[str]) -> str | None:
    """The vCard 3.0 text of one row, or None when it has no name, e-mail or phone."""
    groups: dict[tuple[str, str], dict[str, list[str]]] = {}
    for spec, cell in zip(specs, row, strict=False):
        value = cell.strip() if spec and spec.prop != "NOTE" else cell
        if spec is None or not value.strip():
            continue
        if spec.prop == "VCARD":
            return value
        group = groups.setdefault((spec.prop, spec.key), {"type": list(spec.types)})
        if spec.part == "type":
            group["type"].extend(t for t in _type_tokens(value) if t not in group["type"])
        else:
            group.setdefault(spec.part or "value", []).append(value)
    lines = [_line(prop, group) for (prop, _), group in groups.items() if prop not in PARTS]
    lines = [line for line in lines if line]
    structured = {prop: group for (prop, _), group in groups.items() if prop in PARTS}
    n_parts = [" ".join(structured.get("N", {}).get(p, [])) for p in PARTS["N"]]
    for (prop, _), group in groups.items():
        if prop in PARTS and prop != "N":
            sep = "\n" if prop == "ADR" else " "
            parts = [sep.join(group.get(part, [])) for part in PARTS[prop]]
            if not any(part.strip() for part in parts):
                continue
            if prop == "ORG":
                parts = [part for part in parts if part]
            lines.append(_property(prop, group["type"], ";".join(_escape(p) for p in parts)))
    names = {line.split(":", 1)[0].split(";", 1)[0] for line in lines}
    if not (names & {"FN", "ORG", "EMAIL", "TEL"} or any(n_parts)):
        return None
    if "FN" not in names:
        order = [n_parts[3], n_parts[1], n_parts[2], n_parts[0], n_parts[4]]
        fn = " ".join(part for part in order if part) or _first_value(groups)
        lines.append(f"FN:{_escape(fn)}")
    lines.append("N:" + ";".join(_escape(part) for part in n_parts))
    return "BEGIN:VCARD\r\nVERSION:3.0\r\n" + "".join(f"{x}\r\n" for x in lines) + "END:VCARD\r\n"


def _line(prop: str, group: dict[str, list[str]]) -> str:
    """The content lines of a non-structured property group (CRLF-joined)."""
    out: list[str] = []
    for cell in group.get("value", []):
        if prop == "CATEGORIES":
            values = [v.strip() for v in re.split(r" ::: |[,;]", cell) if v.strip()]
            values = [v for v in values if not v.startswith("* ")] or []
            if values:
                out.append(_property(prop, group["type"], ",".join(map(_escape, values))))
            continue
        if prop == "BDAY":
            pieces = [_birthday(cell)]
        else:
            pieces = cell.split(" ::: ") if prop in MULTI else [cell]
        for piece in filter(None, (p.strip() if prop != "NOTE" else p for p in pieces)):
            text = " ".join(piece.split()) if prop in _UNESCAPED else _escape(piece)
            if text:
                out.append(_property(prop, group["type"], text))
        if prop in SINGLE:
            break
    return "\r\n".join(out)


def _property(prop: str, types: list[str], value: str) -> str:
    return f"{prop};TYPE={','.join(types)}:{value}" if types else f"{prop}:{value}"


def _first_value(groups: dict[tuple[str, str], dict[str, list[str]]]) -> str:
    for prop in ("ORG", "EMAIL", "TEL"):
        for (name, _), group in groups.items():
            values = [v for key, vs in group.items() if key != "type" for v in vs if v]
            if name == prop and values:
                return values[0].split(" ::: ")[0].strip()
    return ""


def _escape(value: str) -> str:
    """vCard TEXT escaping."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return re.sub(r"\r\n|\r|\n", "\\\\n", value)


def _type_tokens(text: str) -> list[str]:
    """TYPE values from a spec or a type cell (``* Work`` -> ``pref``, ``work``)."""
    tokens = [_TYPE_WORDS.get(t.lower(), t.lower()) for t in re.split(r"[\s,:]+", text) if t]
    tokens = [re.sub(r"[^a-z0-9-]", "", t) for t in tokens]
    return list(dict.fromkeys(t for t in tokens if t))


def _birthday(text: str) -> str:
    """ISO date from Outlook's ``m/d/yyyy``; ``0/0/00`` (no birthday) becomes empty."""
    match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2,4})", text.strip())
    if not match:
        return text.strip()
    month, day, year = (int(part) for part in match.groups())
    if not (month and day):
        return ""
    return f"{year:04d}-{month:02d}-{day:02d}" if year > 99 else f"--{month:02d}-{day:02d}"
