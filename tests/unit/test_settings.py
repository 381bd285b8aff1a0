"""Settings are validated when a function starts: a missing or malformed variable is named."""

from __future__ import annotations

import pytest

from cdp.errors import InvalidConfig, MalformedSetting, MissingSetting
from cdp.settings import FUNCTION_FIELDS, Settings


def _function_environment() -> dict[str, str]:
    return {name.upper(): f"value-of-{name}" for name in FUNCTION_FIELDS}


def test_a_function_environment_with_every_variable_gives_settings() -> None:
    settings = Settings.from_env(_function_environment(), require=FUNCTION_FIELDS)
    assert settings.profiles_table == "value-of-profiles_table"


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_a_missing_or_empty_required_variable_is_named(blank: str | None) -> None:
    env = _function_environment()
    if blank is None:
        del env["LAKE_BUCKET"]
    else:
        env["LAKE_BUCKET"] = blank
    with pytest.raises(MissingSetting) as caught:
        Settings.from_env(env, require=FUNCTION_FIELDS)
    assert caught.value.details["name"] == "LAKE_BUCKET"
    assert isinstance(caught.value, InvalidConfig)


def test_a_number_that_does_not_parse_is_named() -> None:
    env = {**_function_environment(), "AWS_READ_TIMEOUT": "ten"}
    with pytest.raises(MalformedSetting) as caught:
        Settings.from_env(env)
    assert caught.value.details == {"name": "AWS_READ_TIMEOUT", "expected": "float"}


def test_without_requirements_missing_variables_keep_their_defaults() -> None:
    settings = Settings.from_env({"PROFILES_TABLE": "p"})
    assert settings.lake_bucket == "" and settings.query_engine == "athena"


def test_the_region_may_come_from_the_sdk_default_variable() -> None:
    settings = Settings.from_env({"AWS_DEFAULT_REGION": "eu-west-1"}, require={"aws_region"})
    assert settings.aws_region == "eu-west-1"


def test_requiring_a_name_that_is_not_a_setting_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="lake_bukket"):
        Settings.from_env({}, require={"lake_bukket"})


def test_the_lake_is_the_bucket_unless_a_local_directory_is_given(tmp_path) -> None:
    import pyarrow.fs as pafs

    from cdp.adapters.lake import lake_filesystem, lake_root

    on_s3 = Settings.from_env({"LAKE_BUCKET": "lake-b", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    on_disk = Settings.from_env({"LAKE_BUCKET": "lake-b", "LAKE_ROOT": tmp_path.as_uri()})
    assert lake_root(on_s3) == "lake-b" and isinstance(lake_filesystem(on_s3), pafs.S3FileSystem)
    assert lake_root(on_disk) == str(tmp_path) and isinstance(lake_filesystem(on_disk), pafs.LocalFileSystem)


def test_a_lake_root_that_is_not_a_file_url_is_refused_by_name() -> None:
    from cdp.adapters.lake import lake_root

    with pytest.raises(MalformedSetting) as caught:
        lake_root(Settings.from_env({"LAKE_ROOT": "s3://elsewhere"}))
    assert caught.value.details["name"] == "LAKE_ROOT"
