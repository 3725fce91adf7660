"""Structured logging: JSON lines for machines, a readable console for people, secrets redacted in both.

Call :func:`configure_logging` once at start-up (the CLI and ``bootstrap`` do). Every record, whether it
comes from ``structlog.get_logger()`` or from a library using the standard ``logging`` module, goes through
the same processors: ISO UTC ``timestamp``, ``level``, ``logger``, ``event``, the context bound with
:func:`bind_trace_id` (``trace_id``) and the redaction of secrets.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "MASK",
    "bind_trace_id",
    "configure_logging",
    "current_trace_id",
    "get_logger",
    "is_secret_key",
    "mask_url_credentials",
    "redact",
    "redact_secrets",
    "reset_logging",
]

MASK = "********"

_SECRET_WORDS = frozenset(
    {"password", "passwd", "pwd", "passphrase", "secret", "token", "authorization", "apikey", "cookie"}
)
_SECRET_FRAGMENTS = ("password", "secret", "api_key", "apikey", "private_key", "access_key")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
# scheme://user:password@host → keep the user, hide the password; scheme://token@host → hide the token
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s:]*(?::[^/@\s]*)?)@")
_BEARER = re.compile(r"\b(?P<kind>Bearer)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)

_HANDLER_FLAG = "_tradefleet_handler"


def is_secret_key(key: str) -> bool:
    """Return True if a field or header named ``key`` holds a secret (``api_key``, ``X-Auth-Token``, ...)."""
    norm = _WORD_SPLIT.sub("_", key.lower()).strip("_")
    return any(f in norm for f in _SECRET_FRAGMENTS) or any(w in _SECRET_WORDS for w in norm.split("_"))


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _password = match.group("userinfo").partition(":")
    if sep:
        return f"{match.group('scheme')}{user}:{MASK}@"
    return f"{match.group('scheme')}{MASK}@"


def mask_url_credentials(text: str) -> str:
    """Return ``text`` with the credentials of every URL in it masked (``postgresql://user:********@db``)."""
    if "@" not in text:
        return text
    return _URL_CREDENTIALS.sub(_mask_userinfo, text)


def redact(value: Any) -> Any:
    """Return ``value`` with secrets masked: secret-named keys, bearer tokens and URL credentials."""
    if isinstance(value, str):
        text = mask_url_credentials(value)
        return _BEARER.sub(lambda m: f"{m.group('kind')} {MASK}", text) if " " in text else text
    if isinstance(value, Mapping):
        return {k: MASK if _secret_entry(k, v) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


def _secret_entry(key: Any, value: Any) -> bool:
    return isinstance(key, str) and is_secret_key(key) and value is not None and not isinstance(value, Mapping)


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: mask secrets anywhere in the event (see :func:`redact`)."""
    return {k: MASK if _secret_entry(k, v) else redact(v) for k, v in event_dict.items()}


def bind_trace_id(trace_id: str | None = None) -> str:
    """Bind ``trace_id`` (a new random one if None) to every log line of the current context; return it."""
    trace_id = trace_id or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(trace_id=trace_id)
    return trace_id


def current_trace_id() -> str | None:
    """Return the trace id bound in the current context, if any."""
    value = structlog.contextvars.get_contextvars().get("trace_id")
    return str(value) if value is not None else None


def get_logger(name: str | None = None) -> Any:
    """Return a structlog logger named ``name`` (the ``logger`` field of each line)."""
    return structlog.stdlib.get_logger(name)


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def _add_logger_fallback(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("logger", "root")
    return event_dict


QUIET_LOGGERS = ("alembic", "numba")


def configure_logging(level: str = "INFO", json: bool | None = None, *, stream: TextIO | None = None) -> None:
    """Route structlog and the standard ``logging`` module to one handler on ``stream`` (default stderr).

    Parameters
    ----------
    level
        Minimum level name (``DEBUG`` … ``CRITICAL``) for TradeFleet and library loggers alike.
    json
        True: one JSON object per line. False: coloured console lines. None: JSON unless ``stream`` is a
        terminal. Logs go to stderr so that command output on stdout stays machine-readable.
    stream
        Where lines go; tests pass a ``StringIO``. Calling again replaces the previous configuration.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    out = stream if stream is not None else sys.stderr
    as_json = json if json is not None else not _isatty(out)
    renderer: Processor
    tail: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, _add_logger_fallback]
    if as_json:
        tail += [structlog.processors.format_exc_info, redact_secrets]
        renderer = structlog.processors.JSONRenderer(default=str)
    else:
        tail.append(redact_secrets)
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(), processors=[*tail, renderer]
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_FLAG, True)
    root = logging.getLogger()
    _remove_our_handlers(root)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Chatty libraries speak only when something is wrong (migrations log every plugin at INFO).
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo :func:`configure_logging`: remove its handler and restore structlog's defaults."""
    _remove_our_handlers(logging.getLogger())
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _remove_our_handlers(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_FLAG, False):
            root.removeHandler(handler)
            handler.close()


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
