"""Refuse hostile XML request bodies before Radicale parses them.

One pass of expat, a streaming parser that keeps no tree and does not recurse:
a DOCTYPE stops it at once (so no entity is ever defined, expanded or fetched),
nesting deeper than the limit stops it, malformed XML is refused, and the root
element must be the one the method expects (Radicale answers 500 to a
PROPFIND with another root).
"""

from __future__ import annotations

from xml.parsers import expat

from dav_cms.web.limits_base import RefusalError

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"

# The root elements each method's body may have; REPORT takes many (Radicale answers
# unknown ones). MKCOL: RFC 5689's ``mkcol``, and ``create``, which Radicale reads the
# same way (its own tests and the clients they stand for send it).
XML_METHODS: dict[str, frozenset[tuple[str, str]] | None] = {
    "PROPFIND": frozenset({(DAV, "propfind")}),
    "PROPPATCH": frozenset({(DAV, "propertyupdate")}),
    "MKCOL": frozenset({(DAV, "mkcol"), (DAV, "create")}),
    "MKCALENDAR": frozenset({(CALDAV, "mkcalendar")}),
    "REPORT": None,
}


def check_xml(method: str, text: str, max_depth: int) -> None:
    """RefusalError unless ``text`` is well-formed XML without DTD, within ``max_depth``."""
    expected = XML_METHODS[method]
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    depth = 0
    seen_root = False

    def start(name: str, _attributes: dict[str, str] | list[str]) -> None:
        nonlocal depth, seen_root
        depth += 1
        if max_depth and depth > max_depth:
            raise RefusalError(400, f"XML body nested deeper than {max_depth} elements")
        if not seen_root:
            seen_root = True
            namespace, _, local = name.rpartition(" ")
            if expected is not None and (namespace, local) not in expected:
                want = " or ".join(sorted(f"{{{space}}}{tag}" for space, tag in expected))
                raise RefusalError(400, f"{method} body must be a {want} element, not {name!r}")

    def end(_name: str) -> None:
        nonlocal depth
        depth -= 1

    def doctype(*_args: object) -> None:
        raise RefusalError(400, "XML body with a DOCTYPE (DTDs and entities are refused)")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise RefusalError(400, f"malformed XML body: {expat.ErrorString(exc.code)}") from exc
