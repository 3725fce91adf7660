"""Access tokens refuse every forgery: alg none, other algorithms, wrong key, tampering, expiry, missing claims."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest

from tradefleet.engine.clock import SimClock
from tradefleet.services.auth import AuthError
from tradefleet.services.auth.tokens import AccessTokenCodec, new_refresh_token, parse_refresh_token

KEY = b"k" * 64
OTHER_KEY = b"o" * 64
NOW_MS = 1_800_000_000_000


@pytest.fixture
def clock() -> SimClock:
    return SimClock(NOW_MS)


@pytest.fixture
def codec(clock: SimClock) -> AccessTokenCodec:
    return AccessTokenCodec(KEY, clock)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    now = NOW_MS // 1000
    base = {"sub": "7", "name": "alice", "role": "trader", "iat": now, "exp": now + 900, "jti": "j1", "typ": "access"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_issued_token_decodes_to_its_claims(codec: AccessTokenCodec) -> None:
    decoded = codec.decode(codec.issue(7, "alice", "trader"))

    assert (decoded.user_id, decoded.username, decoded.role) == (7, "alice", "trader")
    assert decoded.expires_s - decoded.issued_s == 15 * 60
    header = jwt.get_unverified_header(codec.issue(7, "alice", "trader"))
    assert header["alg"] == "HS256"
    payload = jwt.decode(
        codec.issue(7, "alice", "trader"), KEY, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert payload["typ"] == "access"
    assert payload["jti"]


def test_each_token_has_its_own_jti(codec: AccessTokenCodec) -> None:
    assert codec.decode(codec.issue(7, "a", "viewer")).jti != codec.decode(codec.issue(7, "a", "viewer")).jti


def test_alg_none_is_refused(codec: AccessTokenCodec) -> None:
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    with pytest.raises(AuthError):
        codec.decode(unsigned)


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithms_are_refused_even_with_the_right_key(codec: AccessTokenCodec, algorithm: str) -> None:
    with pytest.raises(AuthError):
        codec.decode(jwt.encode(claims(), KEY, algorithm=algorithm))


def test_token_signed_with_another_key_is_refused(codec: AccessTokenCodec) -> None:
    with pytest.raises(AuthError):
        codec.decode(jwt.encode(claims(), OTHER_KEY, algorithm="HS256"))


def test_tampered_payload_is_refused(codec: AccessTokenCodec) -> None:
    header, _payload, signature = codec.issue(7, "alice", "viewer").split(".")
    forged = f"{header}.{b64(claims(role='admin'))}.{signature}"

    with pytest.raises(AuthError):
        codec.decode(forged)


def test_tampered_signature_is_refused(codec: AccessTokenCodec) -> None:
    token = codec.issue(7, "alice", "viewer")
    flipped = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(AuthError):
        codec.decode(flipped)


def test_expired_token_is_refused_after_the_leeway(codec: AccessTokenCodec, clock: SimClock) -> None:
    token = codec.issue(7, "alice", "trader")
    clock.set(NOW_MS + 15 * 60_000 + 5_000)
    codec.decode(token)  # within the 10 s leeway

    clock.set(NOW_MS + 15 * 60_000 + 11_000)
    with pytest.raises(AuthError, match="expired"):
        codec.decode(token)


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "jti", "typ", "role", "name"])
def test_token_missing_a_required_claim_is_refused(codec: AccessTokenCodec, missing: str) -> None:
    with pytest.raises(AuthError):
        codec.decode(jwt.encode(claims(**{missing: None}), KEY, algorithm="HS256"))


@pytest.mark.parametrize(
    "changes",
    [
        {"typ": "refresh"},
        {"sub": "alice"},
        {"sub": 7},
        {"exp": True},
        {"exp": "later"},
        {"iat": NOW_MS // 1000 + 3600},
    ],
    ids=["wrong-typ", "non-numeric-sub", "int-sub", "bool-exp", "string-exp", "issued-in-future"],
)
def test_malformed_claims_are_refused(codec: AccessTokenCodec, changes: dict[str, Any]) -> None:
    with pytest.raises(AuthError):
        codec.decode(jwt.encode(claims(**changes), KEY, algorithm="HS256"))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000])
def test_garbage_is_refused(codec: AccessTokenCodec, garbage: str) -> None:
    with pytest.raises(AuthError):
        codec.decode(garbage)


def test_short_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="256 bits"):
        AccessTokenCodec(b"short", SimClock())


def test_refresh_token_is_opaque_and_only_its_hash_is_kept() -> None:
    fresh = new_refresh_token()
    jti, token_hash = parse_refresh_token(fresh.token)

    assert jti == fresh.jti
    assert token_hash == fresh.token_hash
    assert fresh.token.split(".", 1)[1] not in fresh.token_hash


@pytest.mark.parametrize("garbage", ["", "no-dot", ".secret", "jti.", "x" * 300])
def test_malformed_refresh_token_is_refused(garbage: str) -> None:
    with pytest.raises(AuthError):
        parse_refresh_token(garbage)
