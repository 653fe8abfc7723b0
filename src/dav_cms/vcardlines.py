"""vCard property lines as written: parse, compare and write them back."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FOLD = re.compile(r"\r?\n[ \t]")
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Line:
    """One property line of a vCard, as written."""

    group: str
    name: str
    params: tuple[str, ...]
    value: str

    @property
    def key(self) -> tuple[str, tuple[str, ...], str]:
        """What makes two lines the same (the group is only a label)."""
        return self.name, tuple(sorted(param.upper() for param in self.params)), self.value

    def text(self) -> str:
        """The line in vCard syntax (unfolded)."""
        head = f"{self.group}.{self.name}" if self.group else self.name
        return ";".join((head, *self.params)) + ":" + self.value


def parse_line(raw: str) -> Line:
    """Split ``[group.]NAME;PARAM=...:value`` (quoted parameter values may hold ; and :)."""
    parts: list[str] = []
    quoted = False
    start = 0
    for index, char in enumerate(raw):
        if char == '"':
            quoted = not quoted
        elif char in ";:" and not quoted:
            parts.append(raw[start:index])
            start = index + 1
            if char == ":":
                head, *params = parts
                group, _, name = head.rpartition(".")
                return Line(group, name.upper(), tuple(params), raw[start:])
    msg = f"not a vCard property line: {raw[:60]!r}"
    raise ValueError(msg)


def card_lines(text: str) -> list[Line]:
    """The property lines of one vCard (without BEGIN and END)."""
    lines = [parse_line(raw) for raw in _FOLD.sub("", text).splitlines() if raw.strip()]
    return [line for line in lines if line.name not in ("BEGIN", "END")]


def unescape(value: str) -> str:
    """A text value without vCard escapes (``\\,`` ``\\;`` ``\\\\`` ``\\n``)."""
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)
