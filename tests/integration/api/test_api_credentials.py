"""Exchange credentials over real HTTP: encrypted at rest, never answered, never logged, only for the bot's owner.

The plaintext key, secret and passphrase are searched for in every place they could leak: the database
(file bytes on SQLite, every row on both backends), every response, the audit log, and the logs (pytest's
capture and the JSON lines of ``tradefleet.logs``). The gateway's ``load_credentials`` gets them back.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import PASSWORD, Api, assert_error
from sqlalchemy import func, insert, select, text, update

from tradefleet.adapters.storage import SqlTradingStore
from tradefleet.adapters.storage.credentials import SqlCredentialStore
from tradefleet.adapters.storage.leases import LogLine, SqlBotLogs, SqlLeases
from tradefleet.adapters.storage.owner_tables import SqlBotOwners, bot_owners
from tradefleet.adapters.storage.platform_tables import audit_log, bot_leases, bot_logs, exchange_credentials
from tradefleet.adapters.storage.tables import bot_progress, bots, trades
from tradefleet.core.trades import Trade
from tradefleet.logs import configure_logging, reset_logging
from tradefleet.services.auth import Role, load_or_create_keys
from tradefleet.services.bots import BotService
from tradefleet.services.credentials import CredentialService, CredentialsUnreadableError

API_KEY = "AKtf0123456789abcdefWXYZ"
SECRET = "s3cr3t-exchange-value-QZ9-never-shown"
PASSPHRASE = "okx-pass-phrase-777"
PLAINTEXTS = (API_KEY, SECRET, PASSPHRASE)
BODY = {"exchange": "okx", "api_key": API_KEY, "secret": SECRET, "password": PASSPHRASE}
BOT: dict[str, Any] = {"bot_id": "alpha", "strategy": "SampleStrategy", "pairs": ["BTC/USDT"], "timeframe": "5m"}


@pytest.fixture
def credentials(api: Api, tmp_path: Path) -> Iterator[CredentialService]:
    """The bots and credentials services behind the API; trader owns bot ``alpha``; a second trader exists."""
    trading = SqlTradingStore(api.engine, api.clock)
    bots = BotService(trading, SqlBotOwners(api.engine))
    service = CredentialService(SqlCredentialStore(api.engine), load_or_create_keys(tmp_path / "var").secret_box,
                                bots, now_ms=api.clock.now_ms)  # fmt: skip
    api.app.state.bot_service = bots
    api.app.state.credential_service = service
    api.auth.create_user("trader2", PASSWORD, Role.TRADER)
    assert api.client.post("/api/v1/bots", json=BOT, headers=api.bearer("trader")).status_code == 201
    try:
        yield service
    finally:
        trading.close()


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log line of the process at DEBUG, as the JSON lines production writes (with its redaction)."""
    stream = io.StringIO()
    configure_logging("DEBUG", json=True, stream=stream)
    try:
        yield stream
    finally:
        reset_logging()


def _url(bot_id: str = "alpha") -> str:
    return f"/api/v1/bots/{bot_id}/credentials"


def _database_text(api: Api, database_url: str) -> bytes:
    """Every row of every table as text, plus the SQLite files' raw bytes."""
    chunks: list[bytes] = []
    with api.engine.connect() as conn:
        names = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type='table'")
            if database_url.startswith("sqlite")
            else text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        for name in list(names):
            chunks.append(repr(conn.execute(text(f'SELECT * FROM "{name}"')).all()).encode())
    if database_url.startswith("sqlite"):
        database = Path(database_url.removeprefix("sqlite:///"))
        for path in database.parent.glob(database.name + "*"):  # the file, its -wal and -shm
            chunks.append(path.read_bytes())
    return b"\n".join(chunks)


def _assert_nowhere(haystack: str | bytes, where: str) -> None:
    for plain in PLAINTEXTS:
        needle = plain.encode() if isinstance(haystack, bytes) else plain
        assert needle not in haystack, f"{plain!r} leaked into {where}"


def test_stored_credentials_are_encrypted_never_answered_never_logged_and_decrypt_for_the_gateway(
    api: Api,
    credentials: CredentialService,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    json_logs: io.StringIO,
) -> None:
    trader = api.bearer("trader")
    answers: list[httpx.Response] = []
    with caplog.at_level(logging.DEBUG):
        answers.append(api.client.put(_url(), json=BODY, headers=trader))
        answers.append(api.client.get(_url(), headers=trader))
        answers.append(api.client.put(_url(), json={**BODY, "password": ""}, headers=trader))  # 422, not echoed
        answers.append(api.client.put(_url(), json={**BODY, "extra": SECRET}, headers=trader))
        answers.append(api.client.get("/api/v1/audit", params={"limit": 500}, headers=api.bearer("admin")))

    stored, shown = answers[0], answers[1]
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"bot_id": "alpha", "exchange": "okx", "key_hint": "AKtf…WXYZ",
                             "updated_ms": api.clock.now_ms()}  # fmt: skip
    assert shown.status_code == 200 and shown.json() == stored.json()
    assert_error(answers[2], 422, "validation_error")
    assert_error(answers[3], 422, "validation_error")
    audit_rows = answers[4].json()["items"]
    assert [r["details"] for r in audit_rows if r["action"] == "PUT /api/v1/bots/{bot_id}/credentials"][-1] == {
        "body": {"exchange": "okx"}
    }
    for answer in answers:
        _assert_nowhere(answer.text, f"the answer to {answer.request.method} {answer.request.url.path}")
        _assert_nowhere(repr(answer.headers), "response headers")
    _assert_nowhere(_database_text(api, database_url), "the database")
    _assert_nowhere(caplog.text, "pytest's captured logs")
    _assert_nowhere(json_logs.getvalue(), "the JSON logs")
    assert '"exchange credentials stored"' in json_logs.getvalue()  # the logs were captured, and said something

    with api.engine.connect() as conn:
        ciphertext = conn.execute(select(exchange_credentials.c.ciphertext)).scalar_one()
    assert bytes(ciphertext).startswith(b"gAAAAA")  # a Fernet token
    loaded = credentials.load_credentials("alpha")
    assert loaded is not None and loaded.exchange == "okx"
    assert loaded.ccxt_options() == {"apiKey": API_KEY, "secret": SECRET, "password": PASSPHRASE}
    _assert_nowhere(repr(loaded), "the repr of the decrypted credentials")
    assert credentials.load_credentials("nobody") is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the storage runs on both in the other tests
def test_only_the_owner_trader_or_an_admin_may_touch_a_bots_credentials(
    api: Api, credentials: CredentialService
) -> None:
    owner, other, viewer, admin = (api.bearer(n) for n in ("trader", "trader2", "viewer", "admin"))
    minimal = {"exchange": "binance", "api_key": "k" * 8, "secret": "s"}
    assert_error(api.client.get(_url(), headers=owner), 404, "credentials_not_found")
    for method in ("PUT", "GET", "DELETE"):
        body = minimal if method == "PUT" else None
        assert_error(api.client.request(method, _url(), json=body, headers=other), 404, "bot_not_found")
        assert_error(api.client.request(method, _url("ghost"), json=body, headers=owner), 404, "bot_not_found")
        assert_error(api.client.request(method, _url(), json=body), 401, "unauthorized")
    assert_error(api.client.put(_url(), json=minimal, headers=viewer), 403, "forbidden")
    assert_error(api.client.delete(_url(), headers=viewer), 403, "forbidden")

    by_admin = api.client.put(_url(), json=minimal, headers=admin)
    assert by_admin.status_code == 200 and by_admin.json()["key_hint"] == "…kkkk"
    assert api.client.get(_url(), headers=owner).json()["exchange"] == "binance"
    loaded = credentials.load_credentials("alpha")
    assert (
        loaded is not None and loaded.password is None and loaded.ccxt_options() == {"apiKey": "k" * 8, "secret": "s"}
    )
    assert api.client.delete(_url(), headers=owner).status_code == 204
    assert_error(api.client.delete(_url(), headers=owner), 404, "credentials_not_found")
    assert credentials.load_credentials("alpha") is None
    for bad in ({**minimal, "exchange": "Bin ance"}, {**minimal, "api_key": "   "}, {"exchange": "okx", "secret": "s"},
                {**minimal, "secret": "x" * 1025}, {**minimal, "api_key": "key\x00with-nul-0123456789"}):  # fmt: skip
        assert_error(api.client.put(_url(), json=bad, headers=owner), 422, "validation_error")


def test_tampered_copied_or_orphaned_ciphertexts_are_refused_with_a_clear_error(
    api: Api, credentials: CredentialService
) -> None:
    trader, other = api.bearer("trader"), api.bearer("trader2")
    assert api.client.post("/api/v1/bots", json={**BOT, "bot_id": "beta"}, headers=trader).status_code == 201
    assert api.client.put(_url(), json=BODY, headers=trader).status_code == 200
    assert api.client.put(_url("beta"), json={**BODY, "api_key": "another-key-0000"}, headers=trader).status_code == 200
    column = exchange_credentials.c.ciphertext
    with api.engine.begin() as conn:
        original = bytes(conn.execute(select(column).where(exchange_credentials.c.bot_id == "alpha")).scalar_one())
        flipped = original[:40] + (b"A" if original[40:41] != b"A" else b"B") + original[41:]
        conn.execute(
            update(exchange_credentials).where(exchange_credentials.c.bot_id == "alpha").values(ciphertext=flipped)
        )
    with pytest.raises(CredentialsUnreadableError, match="tampered with or encrypted with another fernet"):
        credentials.load_credentials("alpha")
    unreadable = api.client.get(_url(), headers=trader)
    assert_error(unreadable, 409, "credentials_unreadable")
    assert "tampered" in unreadable.json()["error"]["message"]

    with api.engine.begin() as conn:  # alpha's ciphertext pasted onto beta's row
        conn.execute(
            update(exchange_credentials).where(exchange_credentials.c.bot_id == "beta").values(ciphertext=original)
        )
    with pytest.raises(CredentialsUnreadableError, match="made for another bot"):
        credentials.load_credentials("beta")

    # Deleting a bot deletes its keys; a row left behind anyway (by an older version, say) is not inherited
    # by whoever creates a bot with the same id.
    assert api.client.put(_url(), json=BODY, headers=trader).status_code == 200
    with api.engine.connect() as conn:
        left = conn.execute(select(exchange_credentials).where(exchange_credentials.c.bot_id == "alpha")).one()
    assert api.client.delete("/api/v1/bots/alpha", headers=trader).status_code == 204
    assert api.client.post("/api/v1/bots", json=BOT, headers=other).status_code == 201
    assert_error(api.client.get(_url(), headers=other), 404, "credentials_not_found")
    assert credentials.load_credentials("alpha") is None
    with api.engine.begin() as conn:
        conn.execute(insert(exchange_credentials), dict(left._mapping))
    assert_error(api.client.get(_url(), headers=other), 404, "credentials_not_found")
    with pytest.raises(CredentialsUnreadableError, match="another owner"):
        credentials.load_credentials("alpha")
    assert api.client.put(_url(), json={**BODY, "api_key": "trader2-own-key"}, headers=other).status_code == 200
    loaded = credentials.load_credentials("alpha")
    assert loaded is not None and loaded.api_key.get_secret_value() == "trader2-own-key"
    with api.engine.connect() as conn:
        assert conn.execute(select(audit_log.c.action).where(audit_log.c.target == "beta")).scalars().all()


def test_deleting_a_bot_deletes_its_keys_logs_lease_owner_and_progress_but_keeps_its_trades(
    api: Api, credentials: CredentialService
) -> None:
    trader = api.bearer("trader")
    assert api.client.post("/api/v1/bots", json={**BOT, "bot_id": "beta"}, headers=trader).status_code == 201
    trading, leases, logs = SqlTradingStore(api.engine, api.clock), SqlLeases(api.engine), SqlBotLogs(api.engine)
    leases.register("gw-1", "host", 1, 10)
    for bot_id in ("alpha", "beta"):
        assert api.client.put(_url(bot_id), json=BODY, headers=trader).status_code == 200
        logs.append(bot_id, [LogLine(1, "INFO", "tradefleet.bot", f"{bot_id} started")])
        assert leases.claim(bot_id, "gw-1", 60_000) is not None
        leases.release(bot_id, "gw-1")  # the bot was stopped: its gateway let it go, the row stays
        trading.save_progress(bot_id, "BTC/USDT", 1_000)
        trade = Trade(bot_id, "BTC/USDT", 1, 100.0, 1.0, 0.1, 90.0, 90.0, f"{bot_id}-entry")
        trade.close(2, 110.0, 0.11, "roi", f"{bot_id}-exit")
        trading.add_trade(trade)
    tables = (exchange_credentials, bot_logs, bot_leases, bot_owners, bot_progress, bots, trades)

    def rows_of(bot_id: str) -> dict[str, int]:
        with api.engine.connect() as conn:
            return {
                table.name: conn.execute(select(func.count()).where(table.c.bot_id == bot_id)).scalar_one()
                for table in tables
            }

    kept = rows_of("beta")
    assert set(kept.values()) == {1} and rows_of("alpha") == kept
    try:
        assert api.client.delete("/api/v1/bots/alpha", headers=trader).status_code == 204
    finally:
        trading.close()

    assert rows_of("alpha") == {name: 1 if name == "trades" else 0 for name in kept}  # the trade stays as history
    assert rows_of("beta") == kept
