"""The one client factory and the one error translator every adapter is built on."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from pynamodb.exceptions import PutError

from cdp.adapters.aws import aws_client, pynamodb_connection, pynamodb_meta, reset_clients
from cdp.adapters.errors import aws_errors, translate
from cdp.errors import ConcurrentUpdate, ServiceThrottled, StoreError
from cdp.settings import Settings


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutItem")


def test_clients_come_from_settings_with_endpoint_timeouts_and_retry_mode() -> None:
    reset_clients()
    settings = Settings(aws_region="eu-west-1", aws_endpoint_url="http://127.0.0.1:5999",
                        aws_connect_timeout=1.5, aws_read_timeout=4.0, aws_max_attempts=2)
    client = aws_client(settings, "kinesis")
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:5999"
    assert client.meta.config.connect_timeout == 1.5 and client.meta.config.read_timeout == 4.0
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 2}


def test_a_client_is_made_once_per_settings_and_service() -> None:
    reset_clients()
    settings = Settings(events_stream="a")
    assert aws_client(settings, "sqs") is aws_client(settings, "sqs")
    assert aws_client(settings, "sqs") is not aws_client(Settings(events_stream="b"), "sqs")


def test_pynamodb_models_get_the_same_endpoint_and_timeouts() -> None:
    meta = pynamodb_meta(Settings(aws_endpoint_url="http://127.0.0.1:1", aws_read_timeout=7.0), "t")
    assert meta["host"] == "http://127.0.0.1:1" and meta["read_timeout_seconds"] == 7.0
    assert meta["table_name"] == "t" and "host" not in pynamodb_meta(Settings(), "t")


def test_dynamodb_goes_to_its_own_emulator_where_it_is_served_apart_and_every_other_service_does_not() -> None:
    reset_clients()
    settings = Settings(aws_endpoint_url="http://127.0.0.1:5001", aws_endpoint_url_dynamodb="http://127.0.0.1:5002")
    assert aws_client(settings, "dynamodb").meta.endpoint_url == "http://127.0.0.1:5002"
    assert aws_client(settings, "sqs").meta.endpoint_url == "http://127.0.0.1:5001"
    assert pynamodb_meta(settings, "t")["host"] == "http://127.0.0.1:5002"
    assert pynamodb_connection(settings).host == "http://127.0.0.1:5002"
    assert Settings.from_env({"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:5002"}).aws_endpoint_url_dynamodb \
        == "http://127.0.0.1:5002"


def test_pynamodb_makes_as_many_attempts_as_every_other_client() -> None:
    settings = Settings(aws_max_attempts=3)
    client = pynamodb_connection(settings).client
    assert client.meta.config.retries["total_max_attempts"] == 3
    assert pynamodb_meta(settings, "t")["max_retry_attempts"] == 2


@pytest.mark.parametrize("exc", [
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    client_error("InternalServerError", 500),
    client_error("SomethingNew", 503),
    ConnectionResetError("reset"),
])
def test_transport_and_server_errors_are_retryable_store_errors(exc: Exception) -> None:
    error = translate(exc, "write failed")
    assert type(error) is StoreError and error.retryable and error.reason == "write failed"


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException",
                                  "SlowDown", "TooManyRequestsException"])
def test_throttling_of_any_service_is_service_throttled(code: str) -> None:
    error = translate(client_error(code), "x")
    assert isinstance(error, ServiceThrottled) and error.retryable and error.details["code"] == code


def test_a_failed_condition_is_a_concurrent_update() -> None:
    assert isinstance(translate(client_error("ConditionalCheckFailedException"), "x"), ConcurrentUpdate)


@pytest.mark.parametrize("code", ["ValidationException", "AccessDeniedException", "ResourceNotFoundException"])
def test_a_refusal_is_not_retryable(code: str) -> None:
    error = translate(client_error(code), "x")
    assert type(error) is StoreError and not error.retryable


def test_a_missing_file_in_the_lake_is_not_retryable() -> None:
    assert not translate(FileNotFoundError("k"), "x").retryable


def test_pynamodb_errors_are_read_through_their_cause() -> None:
    wrapped = PutError("put failed", client_error("ConditionalCheckFailedException"))
    assert isinstance(translate(wrapped, "x"), ConcurrentUpdate)
    timeout = PutError("put failed", ReadTimeoutError(endpoint_url="http://h"))
    error = translate(timeout, "x")
    assert type(error) is StoreError and error.retryable


def test_the_context_raises_the_domain_error_from_the_original() -> None:
    original = EndpointConnectionError(endpoint_url="http://h")
    with pytest.raises(StoreError) as caught, aws_errors("read failed", table="t"):
        raise original
    assert caught.value.__cause__ is original and caught.value.details["table"] == "t"


def test_the_context_lets_programming_errors_through() -> None:
    with pytest.raises(KeyError), aws_errors("x"):
        raise KeyError("bug")
