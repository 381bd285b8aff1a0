"""Import mappings: what each column becomes, and errors that name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp.errors import InvalidConfig
from cdp.identity.config import IdentityConfig, load_identity_config
from cdp.imports.mapping import Column, load_mapping, parse_mapping

REPO = Path(__file__).resolve().parents[2]
IDENTITY = load_identity_config(REPO / "config" / "identity.yaml")

VALID = """\
type: track
identifiers:
  user_id: customer_id
  crm_id: crm_ref
event: {column: what}
properties:
  revenue: {column: total, type: number}
timestamp: at
message_id: [order_id]
"""


def _error(text: str, identity: IdentityConfig = IDENTITY) -> InvalidConfig:
    with pytest.raises(InvalidConfig) as caught:
        parse_mapping(text, "orders.yaml", identity=identity)
    return caught.value


def test_a_valid_mapping_reads_every_column_it_names() -> None:
    mapping = parse_mapping(VALID, "orders.yaml", identity=IDENTITY)
    assert mapping.name == "orders" and mapping.type == "track"
    assert mapping.identifiers == (("user_id", Column("customer_id")), ("crm_id", Column("crm_ref")))
    assert mapping.properties == (("revenue", Column("total", "number")),)
    assert mapping.event == Column("what")
    assert mapping.columns == {"customer_id", "crm_ref", "what", "total", "at", "order_id"}
    assert mapping.source_id == "orders"


@pytest.mark.parametrize("path", sorted((REPO / "config" / "imports").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_mapping_is_valid(path: Path) -> None:
    assert load_mapping(path, identity=IDENTITY).identifiers


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("type: identify\nidentifiers:\n  user_id: id\n  fax: fax_number\n", 4, "identifiers.fax",
         "unknown identifier type"),
        ("type: identify\nidentifiers: {user_id: id}\ntraits:\n  plan: {column: plan, type: money}\n", 4,
         "traits.plan.type", "must be one of"),
        ("type: identify\nidentifiers: {user_id: id}\nevent: Signed Up\n", 3, "event", "only track rows"),
        ("type: track\nidentifiers: {user_id: id}\n", 1, "", "event: is required"),
        ("type: upsert\nidentifiers: {user_id: id}\n", 1, "type", "identify, track"),
        ("type: identify\nidentifiers: {user_id: id}\ncolumns: [a]\n", 3, "columns", "unknown key"),
        ("type: identify\nidentifiers: {user_id: id}\nidentifiers: {email: e}\n", 3, "identifiers",
         "duplicate key"),
        ("type: identify\nidentifiers:\n  user_id: [id\n", 4, "", "not valid YAML"),
        ("type: identify\n", 1, "", "identifiers: is required"),
        ("type: identify\nidentifiers: {}\n", 2, "identifiers", "at least one"),
        ("type: track\nidentifiers: {user_id: id}\nevent: X\nmessage_id: order_id\n", 4, "message_id",
         "list of column names"),
    ],
)
def test_a_mistake_is_reported_with_its_file_line_and_field(text: str, line: int, field: str, words: str) -> None:
    error = _error(text)
    assert error.details["file"] == "orders.yaml"
    assert error.details["line"] == line
    assert str(error).startswith(f"orders.yaml:{line}: ")
    if field:
        assert error.details["field"] == field
    assert words in str(error)


def test_custom_identifier_types_come_from_the_identity_configuration() -> None:
    text = "type: identify\nidentifiers: {crm_id: ref}\n"
    assert parse_mapping(text, identity=IDENTITY).identifiers == (("crm_id", Column("ref")),)
    assert "unknown identifier type" in str(_error(text, IdentityConfig()))


def test_a_missing_mapping_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="nothing.yaml:0: cannot read"):
        load_mapping(tmp_path / "nothing.yaml")
