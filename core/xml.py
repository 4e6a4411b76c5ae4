"""One hardened XML parser for every XML message ibb reads, and offline XML Schema loading.

Untrusted XML is parsed only by :func:`parse_xml`:

- no DTD: a document with a ``<!DOCTYPE …>`` is refused (this also refuses every entity
  declaration, so no entity expansion, no "billion laughs", no external entities);
- no network: the parser never fetches anything (``no_network``), and no resolver is
  attached;
- a size limit (``max_bytes``, 5 MB by default) checked before parsing, and lxml's own
  limits on depth and text node size stay on (``huge_tree=False``);
- comments and processing instructions are dropped: exclusive canonicalisation does not
  sign comments, so a comment inside a signed text node could otherwise change what a
  reader sees without breaking the signature.

A document breaking a rule raises :class:`XmlRefused` (a :class:`CertificateError`) whose
message says which rule. Schemas are loaded by :func:`load_schema`, whose imports resolve
only to local files named in advance (``locations``), never to the network.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from lxml import etree

from .errors import CertificateError, IbbError

DEFAULT_MAX_BYTES = 5_000_000
"""Largest XML document :func:`parse_xml` accepts unless told otherwise."""


class XmlRefused(CertificateError):
    """An XML document is refused before or while parsing (size, DTD, entities, syntax)."""


class SchemaUnavailable(IbbError):
    """An XML Schema file cannot be read or compiled (a configuration problem, not bad input)."""


_local = threading.local()


def _parser() -> etree.XMLParser:
    """The hardened parser (one per thread: lxml parsers are not thread-safe)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            load_dtd=False,
            dtd_validation=False,
            no_network=True,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            remove_blank_text=False,
            strip_cdata=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, source: str | None = None) -> etree._Element:
    """Parse untrusted XML into its root element, or raise :class:`XmlRefused` saying why."""
    if not isinstance(data, (bytes, bytearray)):
        raise XmlRefused(["$: XML must be given as bytes"], source)
    if len(data) > max_bytes:
        raise XmlRefused([f"$: document is {len(data)} bytes, the limit is {max_bytes}"], source)
    head = bytes(data[:4096]).lstrip(b"\xef\xbb\xbf")
    if b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in head.upper():
        raise XmlRefused(["$: a DTD (<!DOCTYPE>) is not allowed: no DTDs, no entity declarations"], source)
    try:
        root = etree.fromstring(bytes(data), parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRefused([f"$: not well-formed XML ({exc.msg})"], source) from None
    if root is None:
        raise XmlRefused(["$: empty document"], source)
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise XmlRefused(["$: a DTD (<!DOCTYPE>) is not allowed: no DTDs, no entity declarations"], source)
    for _ in root.iter(etree.Entity):
        raise XmlRefused(["$: entity references are not allowed"], source)
    return root


class LocalResolver(etree.Resolver):
    """Resolves schema imports to local files only; any other URL is refused (no network)."""

    def __init__(self, locations: Mapping[str, Path]):
        super().__init__()
        self.locations = {url.strip(): Path(path) for url, path in locations.items()}

    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        path = self.locations.get((url or "").strip())
        if path is not None:
            return self.resolve_filename(str(path), context)
        if url and ("://" not in url or url.startswith("file:")):  # a local file: allowed
            return None
        raise SchemaUnavailable(f"schema import of {url!r} refused: no network; ship the file and map it locally")


_schemas: dict[tuple[Path, tuple[tuple[str, str], ...]], etree.XMLSchema] = {}
_schemas_lock = threading.Lock()


def load_schema(path: Path, locations: Mapping[str, Path] | None = None) -> etree.XMLSchema:
    """Compile the XML Schema at ``path`` (cached), resolving imports only through ``locations``."""
    key = (Path(path).resolve(), tuple(sorted((k, str(v)) for k, v in (locations or {}).items())))
    with _schemas_lock:
        schema = _schemas.get(key)
        if schema is not None:
            return schema
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        parser.resolvers.add(LocalResolver(locations or {}))
        try:
            doc = etree.parse(str(path), parser=parser)
            _map_imports(doc.getroot(), LocalResolver(locations or {}))
            schema = etree.XMLSchema(doc)
        except OSError as exc:
            raise SchemaUnavailable(f"cannot read XML Schema {path}: {exc}") from None
        except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            raise SchemaUnavailable(f"cannot compile XML Schema {path}: {exc}") from None
        _schemas[key] = schema
        return schema


def _map_imports(schema_root: etree._Element, resolver: LocalResolver) -> None:
    """Point ``xs:import``/``xs:include`` locations at the mapped local files (before libxml2 sees them).

    Done on the parsed schema because libxml2 silently skips a location it cannot parse as
    a URI (the ALADI schemas end theirs with a space), and never calls a resolver for it.
    """
    xs = "{http://www.w3.org/2001/XMLSchema}"
    for node in schema_root.iter(f"{xs}import", f"{xs}include", f"{xs}redefine"):
        location = (node.get("schemaLocation") or "").strip()
        if not location:
            continue
        local = resolver.locations.get(location)
        if local is not None:
            node.set("schemaLocation", local.resolve().as_uri())
        elif "://" in location and not location.startswith("file:"):
            raise SchemaUnavailable(f"schema import of {location!r} refused: no network; ship the file and map it locally")
        else:
            node.set("schemaLocation", location)


def schema_problems(schema: etree.XMLSchema, root: etree._Element, limit: int = 20) -> list[str]:
    """Schema validation errors as ``$: line N: element X: message`` lines (empty when valid)."""
    if schema.validate(root):
        return []
    out = []
    for err in list(schema.error_log)[:limit]:
        where = f"{err.path}" if err.path else "$"
        out.append(f"$ (line {err.line}, {where}): {err.message}")
    return out
