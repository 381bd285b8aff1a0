"""Import mappings: which column of a file is which identifier, trait, property or timestamp.

A mapping is a YAML file (``config/imports/<name>.yaml``)::

    type: identify                 # identify | track: what every row becomes
    source: crm                    # optional: the events' sourceId (default: the file's name)
    identifiers:                   # identifier type (config/identity.yaml) -> column
      user_id: customer_id
      email: email
    traits:                        # trait -> column, or {column: ..., type: number|integer|boolean|string}
      plan: plan
      lifetime_value: {column: ltv, type: number}
    timestamp: updated_at          # optional column (ISO-8601); else the time of the import
    # track only:
    event: Order Completed         # the event name, or {column: event_name}
    properties: {revenue: {column: amount, type: number}}
    message_id: [order_id]         # optional: columns that identify a row in any file

Every error raises :class:`cdp.errors.InvalidConfig` naming the file, the line and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdp.errors import InvalidConfig
from cdp.identity.config import IdentityConfig
from cdp.marked_yaml import Ctx, load_marked

ROW_TYPES = ("identify", "track")
VALUE_TYPES = ("string", "number", "integer", "boolean")
_TOP_KEYS = ("type", "source", "identifiers", "traits", "timestamp", "event", "properties", "message_id")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_FIELD_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$ .-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Column:
    """Where a value comes from: a column of the row, converted to ``type``."""

    name: str
    type: str = "string"


@dataclass(frozen=True, slots=True)
class ImportMapping:
    name: str
    type: str
    identifiers: tuple[tuple[str, Column], ...]
    traits: tuple[tuple[str, Column], ...] = ()
    properties: tuple[tuple[str, Column], ...] = ()
    timestamp: Column | None = None
    event: str | Column | None = None
    message_id: tuple[str, ...] = ()
    source: str = ""

    @property
    def source_id(self) -> str:
        return self.source or self.name

    @property
    def columns(self) -> frozenset[str]:
        """Every column the mapping reads (the others are ignored)."""
        used = [c for _, c in (*self.identifiers, *self.traits, *self.properties)]
        if self.timestamp:
            used.append(self.timestamp)
        if isinstance(self.event, Column):
            used.append(self.event)
        return frozenset({c.name for c in used} | set(self.message_id))


_Ctx = Ctx


# ---------------------------------------------------------------- parsing


def parse_mapping(text: str, source_name: str = "<mapping>", *, identity: IdentityConfig | None = None,
                  name: str | None = None) -> ImportMapping:
    """Parse one mapping; raise :class:`InvalidConfig` naming file, line and field on any problem.

    Identifier types are those of ``identity`` (config/identity.yaml): the defaults plus custom types.
    """
    identity = identity or IdentityConfig()
    doc = load_marked(text, source_name, InvalidConfig)
    root = Ctx.root(source_name, doc, InvalidConfig)
    if not isinstance(doc, dict):
        raise root.fail("a mapping file must be a mapping with type and identifiers")
    for key in doc:
        if key not in _TOP_KEYS:
            raise root.child(doc, key).fail(f"unknown key (expected one of {', '.join(_TOP_KEYS)})")
    default_name = name or (Path(source_name).stem if not source_name.startswith("<") else "import")

    kind = doc.get("type")
    if kind not in ROW_TYPES:
        raise (root.child(doc, "type") if "type" in doc else root).fail(
            f"type must be one of {', '.join(ROW_TYPES)}" if "type" in doc else "type: is required")
    source = doc.get("source", "")
    if source and (not isinstance(source, str) or not _NAME_RE.match(source)):
        raise root.child(doc, "source").fail("must be lower-case letters, digits, '-' or '_' (1-64 characters)")

    if "identifiers" not in doc:
        raise root.fail("identifiers: is required (at least one identifier column)")
    id_ctx = root.child(doc, "identifiers")
    identifiers = _columns(doc["identifiers"], id_ctx)
    if not identifiers:
        raise id_ctx.fail("name at least one identifier column")
    for type_name, _ in identifiers:
        if type_name not in identity.types:
            raise id_ctx.child(doc["identifiers"], type_name).fail(
                f"unknown identifier type (known: {', '.join(identity.types)})")

    traits = _columns(doc.get("traits", {}), root.child(doc, "traits")) if "traits" in doc else ()
    timestamp = _column(doc["timestamp"], root.child(doc, "timestamp")) if "timestamp" in doc else None

    event: str | Column | None = None
    properties: tuple[tuple[str, Column], ...] = ()
    if kind == "track":
        if "event" not in doc:
            raise root.fail("event: is required for track rows (a name, or {column: ...})")
        ev_ctx = root.child(doc, "event")
        raw_event = doc["event"]
        if isinstance(raw_event, str):
            if not raw_event.strip():
                raise ev_ctx.fail("must not be empty")
            event = raw_event
        else:
            event = _column(raw_event, ev_ctx)
        if "properties" in doc:
            properties = _columns(doc["properties"], root.child(doc, "properties"))
    else:
        for key in ("event", "properties"):
            if key in doc:
                raise root.child(doc, key).fail("only track rows have an event and properties")

    message_id: tuple[str, ...] = ()
    if "message_id" in doc:
        mid_ctx = root.child(doc, "message_id")
        raw_ids = doc["message_id"]
        if not isinstance(raw_ids, list) or not raw_ids or not all(isinstance(c, str) and c for c in raw_ids):
            raise mid_ctx.fail("must be a list of column names")
        message_id = tuple(raw_ids)

    return ImportMapping(name=default_name, type=kind, identifiers=identifiers, traits=traits,
                         properties=properties, timestamp=timestamp, event=event, message_id=message_id,
                         source=source)


def _columns(raw: Any, ctx: _Ctx) -> tuple[tuple[str, Column], ...]:
    if not isinstance(raw, dict):
        raise ctx.fail("must be a mapping of name -> column")
    found = []
    for key, value in raw.items():
        key_ctx = ctx.child(raw, key)
        if not _FIELD_RE.match(key):
            raise key_ctx.fail("not a valid field name")
        found.append((key, _column(value, key_ctx)))
    return tuple(found)


def _column(raw: Any, ctx: _Ctx) -> Column:
    if isinstance(raw, str) and raw:
        return Column(raw)
    if isinstance(raw, dict):
        unknown = set(raw) - {"column", "type"}
        if unknown:
            raise ctx.child(raw, sorted(unknown)[0]).fail("unknown key (expected column and type)")
        column = raw.get("column")
        if not isinstance(column, str) or not column:
            raise ctx.fail("column: is required (the column's name)")
        value_type = raw.get("type", "string")
        if value_type not in VALUE_TYPES:
            raise ctx.child(raw, "type").fail(f"must be one of {', '.join(VALUE_TYPES)}")
        return Column(column, value_type)
    raise ctx.fail("must be a column name or {column: ..., type: ...}")


def load_mapping(path: str | Path, *, identity: IdentityConfig | None = None) -> ImportMapping:
    """The mapping in a YAML file, named after the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidConfig(f"{path}:0: cannot read the mapping: {exc.strerror}", file=str(path), line=0) from exc
    return parse_mapping(text, str(path), identity=identity, name=path.stem)
