"""config/identity.yaml is read into the identity configuration, and a broken file says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp.errors import InvalidConfig
from cdp.identity.config import IdentityConfig, load_identity_config

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "identity.yaml"


def test_the_shipped_file_declares_custom_identifiers_and_computed_traits() -> None:
    config = load_identity_config(SHIPPED)
    assert set(config.types) == {"user_id", "email", "phone", "anonymous_id", "device_id", "crm_id"}
    assert "revenue_total" in {t.name for t in config.computed_traits}
    assert config.limit("user_id") == 1


def test_a_missing_file_gives_the_defaults() -> None:
    assert load_identity_config(Path("/nonexistent/identity.yaml")) == IdentityConfig()


def test_invalid_yaml_is_refused_with_the_file_name(tmp_path: Path) -> None:
    bad = tmp_path / "identity.yaml"
    bad.write_text("limits: {user_id: 1\n")
    with pytest.raises(InvalidConfig, match="identity.yaml: not valid YAML"):
        load_identity_config(bad)


def test_an_unknown_setting_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "identity.yaml"
    bad.write_text("limitz: {user_id: 1}\n")
    with pytest.raises(InvalidConfig, match="limitz"):
        load_identity_config(bad)


def test_a_list_at_the_top_level_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "identity.yaml"
    bad.write_text("- user_id\n")
    with pytest.raises(InvalidConfig, match="mapping"):
        load_identity_config(bad)
