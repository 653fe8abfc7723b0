"""Items back to files: the reverse of the parsers, round-trip exact.

For items produced by the parsers, ``parse_vcf(to_vcf(texts))``,
``parse_ics(to_ics(texts))`` and ``parse_csv(to_csv(texts))`` give back the
same item texts byte for byte.

CSV columns (:func:`to_csv`) -- every header is a column spec of
:mod:`dav_cms.importers.csv`, so the file needs no mapping to be read back::

    UID, FN, N.family, N.given, N.additional, N.prefix, N.suffix, NICKNAME,
    ORG.name, ORG.unit, TITLE, ROLE, BDAY, NOTE, CATEGORIES,
    EMAIL#i, EMAIL.type#i, TEL#i, TEL.type#i, URL#i, URL.type#i      (i = 1..max)
    ADR.box#i, ADR.extended#i, ADR.street#i, ADR.city#i, ADR.region#i,
    ADR.code#i, ADR.country#i, ADR.type#i                              (i = 1..max)
    VCARD

TYPE values are comma-separated. A card the other columns cannot reproduce
exactly (a vCard 4.0 card, a PHOTO, grouped or parameterised properties, ...)
also has its complete text in the ``VCARD`` column, which the importer prefers.

A cell a spreadsheet would run as a formula (it begins with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) is written with a ``'`` in front, except a
strict ``+49 30 1234`` phone number in a ``TEL`` column (see
:mod:`dav_cms.importers.formulas`); the importer takes the quote off again. The
``.vcf`` and ``.ics`` exports are the stored texts, unchanged.
"""

from __future__ import annotations

import csv as _csv
import io
from collections.abc import Iterable
from typing import Any

from radicale import item as radicale_item

from dav_cms.importers import formulas
from dav_cms.importers._common import Block, Stray, split_blocks, split_lines, unfold
from dav_cms.importers.csv import MULTI, PARTS, Spec, build_card, column_specs
from dav_cms.importers.vcf import normalise_card

#: PRODID of exported calendars (the importer replaces it with Radicale's).
PRODID = "-//dav-cms//export//EN"
_BASE = [
    "UID",
    "FN",
    "N.family",
    "N.given",
    "N.additional",
    "N.prefix",
    "N.suffix",
    "NICKNAME",
    "ORG.name",
    "ORG.unit",
    "TITLE",
    "ROLE",
    "BDAY",
    "NOTE",
    "CATEGORIES",
]


def to_vcf(texts: Iterable[str]) -> str:
    """Concatenate vCard texts into one ``.vcf`` file."""
    return "".join(text.rstrip("\r\n") + "\r\n" for text in texts)


def to_ics(texts: Iterable[str], name: str = "") -> str:
    """Merge calendar objects into one VCALENDAR with each VTIMEZONE once.

    Args:
        texts: Item texts (each one VCALENDAR).
        name: Optional ``X-WR-CALNAME``.

    Returns:
        The ``.ics`` file; for a TZID defined differently by two items the first wins.

    Raises:
        ValueError: When a text is not a VCALENDAR.
    """
    timezones: dict[str, str] = {}
    components: list[str] = []
    for text in texts:
        blocks = [b for b in split_blocks(split_lines(text)) if isinstance(b, Block)]
        if len(blocks) != 1 or blocks[0].name != "VCALENDAR" or blocks[0].error:
            msg = "not a calendar object"
            raise ValueError(msg)
        for part in split_blocks(blocks[0].inner):
            if isinstance(part, Stray):
                continue
            if part.name != "VTIMEZONE":
                components.append(part.text)
                continue
            tzids = [x for x in unfold(part.inner) if x.upper().startswith("TZID:")]
            timezones.setdefault(tzids[0][5:].strip() if tzids else part.text, part.text)
    header = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:{PRODID}\r\n"
    if name:
        header += f"X-WR-CALNAME:{_ics_escape(name)}\r\n"
    return header + "".join(timezones.values()) + "".join(components) + "END:VCALENDAR\r\n"


def to_csv(texts: Iterable[str]) -> str:
    """Write vCards as CSV in the dav-cms layout (see the module docstring).

    Raises:
        ValueError: When a text is not a vCard.
    """
    cards = [(_read_card(text), text) for text in texts]
    counts = {prop: max((len(c[prop]) for c, _ in cards), default=0) for prop in MULTI}
    header = list(_BASE)
    for prop in ("EMAIL", "TEL", "URL"):
        for i in range(1, counts[prop] + 1):
            header += [f"{prop}#{i}", f"{prop}.type#{i}"]
    for i in range(1, counts["ADR"] + 1):
        header += [f"ADR.{part}#{i}" for part in PARTS["ADR"]] + [f"ADR.type#{i}"]
    header.append("VCARD")
    specs = column_specs(header)
    out = io.StringIO()
    writer = _csv.writer(out)
    writer.writerow(header)
    for values, text in cards:
        row = [values["single"].get(column, "") for column in header]
        for prop in MULTI:
            for i, (parts, types) in enumerate(values[prop], 1):
                names = PARTS.get(prop, ("",))
                for part, value in zip(names, parts, strict=True):
                    row[header.index(f"{prop}.{part}#{i}" if part else f"{prop}#{i}")] = value
                row[header.index(f"{prop}.type#{i}")] = ",".join(types)
        if values["other"] or not _reproduces(specs, row, text):
            row[-1] = text
        writer.writerow(
            [
                formulas.neutralise(cell, phone=_is_phone(spec))
                for spec, cell in zip(specs, row, strict=True)
            ]
        )
    return out.getvalue()


def _is_phone(spec: Spec | None) -> bool:
    """Whether the column holds phone numbers (``TEL#i``)."""
    return spec is not None and spec.prop == "TEL" and not spec.part


def _read_card(text: str) -> dict[str, Any]:
    """The CSV cell values of one card; ``other`` counts what has no column."""
    components = radicale_item.read_components(text)
    if len(components) != 1 or components[0].name != "VCARD":
        msg = "not a vCard"
        raise ValueError(msg)
    values: dict[str, Any] = {"single": {}, "other": 0, **{prop: [] for prop in MULTI}}
    single: dict[str, str] = values["single"]
    for child in components[0].getChildren():
        name, value = child.name.upper(), child.value
        simple = not child.group and set(child.params) <= {"TYPE"}
        types = [str(t) for t in child.params.get("TYPE", [])]
        if name == "VERSION" and value == "3.0":
            continue
        if simple and name in MULTI and name != "ADR":
            values[name].append(([_flat(value)], types))
        elif simple and name == "ADR":
            values[name].append(([_flat(getattr(value, p, "")) for p in _ADR_ATTRS], types))
        elif simple and not types and name == "N" and "N.family" not in single:
            for part, attr in zip(PARTS["N"], _N_ATTRS, strict=True):
                single[f"N.{part}"] = _flat(getattr(value, attr, ""))
        elif simple and not types and name == "ORG" and "ORG.name" not in single:
            parts = value if isinstance(value, list) else [value]
            single["ORG.name"], single["ORG.unit"] = _flat(parts[0]), _flat(parts[1:])
        elif simple and not types and name in _BASE and name not in single:
            single[name] = ",".join(value) if name == "CATEGORIES" else _flat(value)
        else:
            values["other"] += 1
    return values


_N_ATTRS = ("family", "given", "additional", "prefix", "suffix")
_ADR_ATTRS = ("box", "extended", "street", "city", "region", "code", "country")


def _reproduces(specs: list[Any], row: list[str], text: str) -> bool:
    """Whether importing ``row`` gives back exactly ``text``."""
    try:
        card = build_card(specs, row)
        return card is not None and normalise_card(card)[1] == text
    except ValueError:
        return False


def _flat(value: object) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(part) for part in value)
    return str(value)


def _ics_escape(value: str) -> str:
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\n", "\\n")
