"""Structured logging: JSON lines, stdlib routing, trace ids and secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import structlog

from tradefleet.logs import (
    MASK,
    bind_trace_id,
    configure_logging,
    current_trace_id,
    get_logger,
    is_secret_key,
    mask_url_credentials,
    redact,
    reset_logging,
)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    structlog.contextvars.clear_contextvars()
    yield io.StringIO()
    reset_logging()
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_utc_timestamp_level_event_and_logger(stream: io.StringIO) -> None:
    configure_logging("INFO", json=True, stream=stream)
    get_logger("tradefleet.engine").info("order placed", pair="BTC/USDT", amount=0.5)
    [line] = lines(stream)
    assert line["event"] == "order placed"
    assert line["level"] == "info"
    assert line["logger"] == "tradefleet.engine"
    assert (line["pair"], line["amount"]) == ("BTC/USDT", 0.5)
    stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)
    assert "trace_id" not in line


def test_bound_trace_id_appears_on_every_line_until_cleared(stream: io.StringIO) -> None:
    configure_logging("INFO", json=True, stream=stream)
    trace_id = bind_trace_id("req-42")
    assert trace_id == current_trace_id() == "req-42"
    get_logger("a").info("first")
    logging.getLogger("some.library").info("second")
    structlog.contextvars.clear_contextvars()
    get_logger("a").info("third")
    assert [line.get("trace_id") for line in lines(stream)] == ["req-42", "req-42", None]


def test_bind_trace_id_generates_an_id_when_none_is_given(stream: io.StringIO) -> None:
    first = bind_trace_id()
    second = bind_trace_id()
    assert first != second
    assert len(first) == 32
    assert current_trace_id() == second


def test_stdlib_library_logs_use_the_same_json_format(stream: io.StringIO) -> None:
    configure_logging("INFO", json=True, stream=stream)
    logging.getLogger("ccxt.base").warning("rate limited for %s seconds", 3)
    [line] = lines(stream)
    assert line["event"] == "rate limited for 3 seconds"
    assert line["level"] == "warning"
    assert line["logger"] == "ccxt.base"
    assert "timestamp" in line


def test_level_filters_both_structlog_and_stdlib(stream: io.StringIO) -> None:
    configure_logging("warning", json=True, stream=stream)
    get_logger("a").info("dropped")
    logging.getLogger("b").debug("dropped too")
    get_logger("a").error("kept")
    assert [line["event"] for line in lines(stream)] == ["kept"]


def test_reconfiguring_replaces_the_handler_instead_of_duplicating_lines(stream: io.StringIO) -> None:
    configure_logging("INFO", json=True, stream=stream)
    configure_logging("INFO", json=True, stream=stream)
    get_logger("a").info("once")
    assert len(lines(stream)) == 1


def test_console_renderer_is_readable_text_without_colours_off_a_terminal(stream: io.StringIO) -> None:
    configure_logging("INFO", json=False, stream=stream)
    get_logger("tradefleet.cli").info("bot started", bot_id="sma-btc")
    text = stream.getvalue()
    assert "bot started" in text
    assert "bot_id=sma-btc" in text
    assert "\x1b[" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_json_is_chosen_automatically_when_the_stream_is_not_a_terminal(stream: io.StringIO) -> None:
    configure_logging("INFO", json=None, stream=stream)
    get_logger("a").info("auto")
    assert lines(stream)[0]["event"] == "auto"


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging("LOUD", json=True, stream=io.StringIO())


# --- redaction ----------------------------------------------------------------------------------------


def test_secret_named_fields_are_masked_in_log_lines(stream: io.StringIO) -> None:
    configure_logging("INFO", json=True, stream=stream)
    get_logger("a").info(
        "login",
        password="hunter2",
        api_key="k-123",
        client_secret="s-456",
        access_token="t-789",
        headers={"Authorization": "Basic dXNlcjpwdw==", "X-Api-Key": "xk", "Accept": "application/json"},
        max_tokens=512,
        user="alice",
    )
    [line] = lines(stream)
    assert line["password"] == line["api_key"] == line["client_secret"] == line["access_token"] == MASK
    assert line["headers"] == {"Authorization": MASK, "X-Api-Key": MASK, "Accept": "application/json"}
    assert (line["max_tokens"], line["user"]) == (512, "alice")
    for secret in ("hunter2", "k-123", "s-456", "t-789", "dXNlcjpwdw=="):
        assert secret not in stream.getvalue()


def test_bearer_tokens_and_url_credentials_are_masked_in_any_value(stream: io.StringIO) -> None:
    configure_logging("INFO", json=True, stream=stream)
    get_logger("a").info("calling Bearer eyJhbGciOi.abc.def", target="postgresql://trader:hunter2@db/tf")
    logging.getLogger("urllib3").info("GET https://user:pw@example.com/path")
    first, second = lines(stream)
    assert first["event"] == f"calling Bearer {MASK}"
    assert first["target"] == f"postgresql://trader:{MASK}@db/tf"
    assert second["event"] == f"GET https://user:{MASK}@example.com/path"


def test_secrets_in_exception_messages_are_masked(stream: io.StringIO) -> None:
    configure_logging("INFO", json=True, stream=stream)
    try:
        raise ConnectionError("cannot reach redis://:s3cret@cache:6379")
    except ConnectionError:
        get_logger("a").exception("bus down")
    [line] = lines(stream)
    assert "ConnectionError" in line["exception"]
    assert "s3cret" not in stream.getvalue()


def test_secrets_are_masked_by_the_console_renderer_too(stream: io.StringIO) -> None:
    configure_logging("INFO", json=False, stream=stream)
    get_logger("a").info("connect", password="hunter2", url="redis://u:pw@h")
    assert "hunter2" not in stream.getvalue()
    assert f"redis://u:{MASK}@h" in stream.getvalue()


@pytest.mark.parametrize(
    "key",
    ["password", "PASSWD", "api_key", "apiKey", "X-Api-Key", "secret", "client_secret", "Authorization",
     "access_token", "refresh-token", "private_key", "passphrase", "Cookie"],
)  # fmt: skip
def test_is_secret_key_recognises_secret_names(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["max_tokens", "user", "pair", "stoploss_guard", "bot_id", "event", "trace_id"])
def test_is_secret_key_leaves_ordinary_names_alone(key: str) -> None:
    assert not is_secret_key(key)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:pw@host:5432/db", f"postgresql://user:{MASK}@host:5432/db"),
        ("redis://:pw@host/0", f"redis://:{MASK}@host/0"),
        ("https://token@api.example.com", f"https://{MASK}@api.example.com"),
        ("sqlite:///var/tradefleet.sqlite", "sqlite:///var/tradefleet.sqlite"),
        ("mail me at a@b.c", "mail me at a@b.c"),
        ("two: http://a:1@x and http://b:2@y", f"two: http://a:{MASK}@x and http://b:{MASK}@y"),
    ],
)
def test_mask_url_credentials(text: str, expected: str) -> None:
    assert mask_url_credentials(text) == expected


def test_redact_walks_nested_lists_and_tuples_and_keeps_none() -> None:
    value = {"items": [{"token": "t"}, ("Bearer abc",)], "password": None, "n": 3}
    assert redact(value) == {"items": [{"token": MASK}, (f"Bearer {MASK}",)], "password": None, "n": 3}
