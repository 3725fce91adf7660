"""Turn one answered HTTP request into an :class:`AuditEntry`, keeping every secret out of it.

What is kept of a request body is an allow-listed summary: only top-level fields named in
:data:`SUMMARY_FIELDS` (never a field whose name says it is a secret), with scalar values or short lists
of them, strings cut to :data:`MAX_TEXT` characters. Passwords, tokens, API keys and exchange secrets are
never in the list, so they never reach the log. On a login route the actor is the username tried (from the
body or an HTTP Basic header, never the password), so failed logins say who was tried.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from tradefleet.adapters.storage.audit import AuditEntry
from tradefleet.logs import is_secret_key
from tradefleet.services.auth import Principal

ANONYMOUS = "anonymous"
NO_ROLE = "none"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BODY = 64 * 1024  # larger bodies are not summarised (their size is recorded instead)
MAX_TEXT = 200
MAX_LIST = 20

# Fields of request bodies worth keeping: what was asked for, never how it was authenticated.
SUMMARY_FIELDS = frozenset(
    {
        "username", "role", "disabled", "name",  # accounts and API key labels
        "bot_id", "strategy", "mode", "exchange", "timeframe", "pairs", "quote_currency", "starting_balance",
        "level", "reason",  # kill switches
        "pair", "side", "trade_id", "tradeid", "stake_amount", "stakeamount", "enter_tag", "entry_tag",
        "price", "ordertype", "order_type", "amount", "symbol",  # trading commands
    }
)  # fmt: skip


def is_login_route(route: str) -> bool:
    """Return True for routes that take a username and password (``/api/v1/auth/login``, ``/.../token/login``)."""
    return route.endswith("/login")


def summarize_body(body: bytes | None, content_type: str) -> dict[str, Any]:
    """Return the allow-listed fields of a JSON object body; ``{}`` for any other body."""
    if not body or "json" not in content_type.lower():
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeError):
        return {}
    if not isinstance(parsed, Mapping):
        return {}
    summary: dict[str, Any] = {}
    for key, value in parsed.items():
        if key not in SUMMARY_FIELDS or is_secret_key(key):
            continue
        kept = _scalar(value)
        if kept is not _DROP:
            summary[key] = kept
        elif isinstance(value, list) and len(value) <= MAX_LIST:
            items = [_scalar(v) for v in value]
            if all(v is not _DROP for v in items):
                summary[key] = items
    return summary


_DROP = object()


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:MAX_TEXT]
    return _DROP


def basic_auth_username(authorization: str | None) -> str | None:
    """Return the username of an HTTP Basic ``Authorization`` header (the password is dropped), or None."""
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    username, sep, _password = decoded.partition(":")
    return username[:MAX_TEXT] if sep and username else None


def target_of(path_params: Mapping[str, Any]) -> str:
    """Return the value of the single path parameter, ``name=value,...`` for several, ``""`` for none."""
    if len(path_params) == 1:
        return str(next(iter(path_params.values())))[:MAX_TEXT]
    return ",".join(f"{k}={v}" for k, v in path_params.items())[:MAX_TEXT]


def build_entry(
    *,
    method: str,
    route: str,
    path_params: Mapping[str, Any],
    status_code: int,
    request_id: str,
    principal: Principal | None,
    summary: Mapping[str, Any],
    attempted_username: str | None = None,
    error_code: str | None = None,
    body_too_large: int | None = None,
) -> AuditEntry:
    """Return the entry of one answered request: who (``principal``, else the login tried), what, outcome."""
    if principal is not None:
        actor, role = principal.username, principal.role.value
    elif is_login_route(route) and (attempted_username or summary.get("username")):
        actor, role = str(attempted_username or summary["username"])[:MAX_TEXT], NO_ROLE
    else:
        actor, role = ANONYMOUS, NO_ROLE
    details: dict[str, Any] = {}
    if summary:
        details["body"] = dict(summary)
    if body_too_large is not None:
        details["body_bytes"] = body_too_large
    if error_code:
        details["error"] = error_code[:MAX_TEXT]
    return AuditEntry(
        actor=actor,
        role=role,
        action=f"{method} {route}",
        target=target_of(path_params),
        status_code=status_code,
        request_id=request_id,
        details=details,
    )


def error_code_of(body: bytes) -> str | None:
    """Return ``error.code`` of an error response body in the one shape, or None."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeError):
        return None
    error = parsed.get("error") if isinstance(parsed, Mapping) else None
    code = error.get("code") if isinstance(error, Mapping) else None
    return code if isinstance(code, str) else None
