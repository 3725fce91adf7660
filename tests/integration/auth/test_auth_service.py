"""The auth service on a migrated database (SQLite and PostgreSQL): logins, rotation, keys, roles, first run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import argon2
import pytest
from sqlalchemy import Engine, text

from tradefleet.adapters.storage import make_engine, upgrade
from tradefleet.core.errors import ConfigError
from tradefleet.engine.clock import SimClock
from tradefleet.services.auth import (
    AccountError,
    AuthError,
    AuthService,
    LastAdminError,
    PasswordHasher,
    PermissionDenied,
    Principal,
    PrincipalKind,
    RateLimited,
    Role,
    SqlAuthRepository,
    UserExistsError,
    load_or_create_keys,
)

CHEAP = argon2.Parameters(
    type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=1024, parallelism=1
)
STRONGER = argon2.Parameters(
    type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=2, memory_cost=2048, parallelism=1
)
START_MS = 1_800_000_000_000
PASSWORD = "correct horse battery staple"
INTER_SERVICE = "inter-service-token-from-settings"


class Env:
    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self.clock = SimClock(START_MS)
        self.hasher = PasswordHasher(CHEAP)
        self.auth = self.service()

    def service(self, hasher: PasswordHasher | None = None) -> AuthService:
        return AuthService(
            SqlAuthRepository(self.engine),
            load_or_create_keys(self.data_dir),
            self.clock,
            hasher=hasher or self.hasher,
            inter_service_token=INTER_SERVICE,
        )

    def advance(self, seconds: float) -> None:
        self.clock.set(self.clock.now_ms() + int(seconds * 1000))

    def user(self, name: str = "alice", role: Role = Role.TRADER) -> Principal:
        self.auth.create_user(name, PASSWORD, role)
        return self.auth.verify_access(self.auth.authenticate(name, PASSWORD).access_token)

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        yield Env(engine, tmp_path / "var")
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- accounts and logins
def test_login_returns_tokens_whose_access_token_names_the_user(env: Env) -> None:
    env.auth.create_user("Alice", PASSWORD, "trader")

    pair = env.auth.authenticate("alice", PASSWORD)
    principal = env.auth.verify_access(pair.access_token)

    assert (principal.username, principal.role, principal.kind) == ("alice", Role.TRADER, PrincipalKind.USER)
    assert pair.expires_in == 900
    assert pair.token_type == "bearer"
    assert PASSWORD not in repr(pair) and pair.access_token not in repr(pair)


def test_password_is_stored_only_as_an_argon2id_hash(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.VIEWER)

    stored = str(env.scalar("SELECT password_hash FROM users WHERE username = 'alice'"))
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


@pytest.mark.parametrize(
    ("username", "password", "role"),
    [("alice", "too short", "trader"), ("a b", PASSWORD, "trader"), ("alice", PASSWORD, "service"),
     ("alice", PASSWORD, "root")],
    ids=["short-password", "bad-username", "service-role", "unknown-role"],
)  # fmt: skip
def test_create_user_enforces_policy(env: Env, username: str, password: str, role: str) -> None:
    with pytest.raises(AccountError):
        env.auth.create_user(username, password, role)


def test_usernames_are_unique_regardless_of_case(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    with pytest.raises(UserExistsError):
        env.auth.create_user("ALICE", PASSWORD, Role.VIEWER)


def test_only_admins_create_users_through_the_api(env: Env) -> None:
    trader = env.user("trader1", Role.TRADER)
    with pytest.raises(PermissionDenied):
        env.auth.create_user("bob", PASSWORD, Role.ADMIN, actor=trader)


def test_wrong_password_and_unknown_user_fail_alike_and_cost_one_hash_each(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    calls: list[str] = []
    real_verify = env.hasher.verify

    def counting_verify(encoded: str, password: str) -> bool:
        calls.append(encoded)
        return real_verify(encoded, password)

    monkeypatch.setattr(env.hasher, "verify", counting_verify)

    with pytest.raises(AuthError) as wrong:
        env.auth.authenticate("alice", "wrong password here")
    with pytest.raises(AuthError) as unknown:
        env.auth.authenticate("nobody", "wrong password here")

    assert wrong.value.message == unknown.value.message == "invalid username or password"
    assert len(calls) == 2  # unknown users are checked against a dummy hash


def test_disabled_user_cannot_log_in_and_loses_sessions(env: Env) -> None:
    admin = env.user("root", Role.ADMIN)
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    pair = env.auth.authenticate("alice", PASSWORD)

    env.auth.set_disabled(admin, "alice", True)

    for attempt in (
        lambda: env.auth.authenticate("alice", PASSWORD),
        lambda: env.auth.verify_access(pair.access_token),
        lambda: env.auth.refresh(pair.refresh_token),
    ):
        with pytest.raises(AuthError):
            attempt()


def test_login_with_old_parameters_rehashes_the_password(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    upgraded = env.service(PasswordHasher(STRONGER))

    upgraded.authenticate("alice", PASSWORD)

    stored = str(env.scalar("SELECT password_hash FROM users WHERE username = 'alice'"))
    assert argon2.extract_parameters(stored) == STRONGER
    upgraded.authenticate("alice", PASSWORD)  # the new hash verifies


def test_access_token_expires_after_15_minutes(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    pair = env.auth.authenticate("alice", PASSWORD)

    env.advance(15 * 60 + 11)
    with pytest.raises(AuthError, match="expired"):
        env.auth.verify_access(pair.access_token)


def test_access_token_from_another_installation_is_refused(env: Env, tmp_path: Path) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    other = AuthService(SqlAuthRepository(env.engine), load_or_create_keys(tmp_path / "other"), env.clock)

    with pytest.raises(AuthError):
        other.verify_access(env.auth.authenticate("alice", PASSWORD).access_token)


# ---------------------------------------------------------------------- refresh rotation
def test_refresh_rotates_the_refresh_token(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    first = env.auth.authenticate("alice", PASSWORD)
    env.advance(60)

    second = env.auth.refresh(first.refresh_token)
    third = env.auth.refresh(second.refresh_token)

    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert env.auth.verify_access(third.access_token).username == "alice"
    assert env.scalar("SELECT count(*) FROM refresh_tokens WHERE used_ms IS NOT NULL") == 2


def test_reusing_a_used_refresh_token_revokes_the_whole_family(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    stolen = env.auth.authenticate("alice", PASSWORD)
    other_session = env.auth.authenticate("alice", PASSWORD)
    legit = env.auth.refresh(stolen.refresh_token)

    with pytest.raises(AuthError, match="already used"):
        env.auth.refresh(stolen.refresh_token)  # the thief (or the victim) replays it

    with pytest.raises(AuthError, match="revoked"):
        env.auth.refresh(legit.refresh_token)  # the newest token of that family is dead too
    env.auth.refresh(other_session.refresh_token)  # another login is unaffected


def test_same_refresh_token_used_in_parallel_wins_at_most_once(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    token = env.auth.authenticate("alice", PASSWORD).refresh_token
    wins: list[object] = []
    losses: list[BaseException] = []

    def use() -> None:
        try:
            wins.append(env.auth.refresh(token))
        except AuthError as exc:
            losses.append(exc)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(wins) <= 1
    assert len(wins) + len(losses) == 4
    assert env.scalar("SELECT count(*) FROM refresh_tokens WHERE revoked_ms IS NULL") == 0  # reuse seen: revoked


def test_refresh_token_expires(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    pair = env.auth.authenticate("alice", PASSWORD)

    env.advance(14 * 24 * 3600 + 1)
    with pytest.raises(AuthError, match="expired"):
        env.auth.refresh(pair.refresh_token)


@pytest.mark.parametrize("forge", ["jti-only", "wrong-secret", "garbage"])
def test_forged_refresh_tokens_are_refused_without_revoking_the_session(env: Env, forge: str) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    pair = env.auth.authenticate("alice", PASSWORD)
    jti = pair.refresh_token.split(".")[0]
    forged = {"jti-only": f"{jti}.", "wrong-secret": f"{jti}.guess", "garbage": "nope.nope"}[forge]

    with pytest.raises(AuthError):
        env.auth.refresh(forged)
    env.auth.refresh(pair.refresh_token)  # a guess at someone's jti must not log them out


def test_logout_revokes_the_family_and_is_idempotent(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    pair = env.auth.refresh(env.auth.authenticate("alice", PASSWORD).refresh_token)

    env.auth.logout(pair.refresh_token)
    env.auth.logout(pair.refresh_token)

    with pytest.raises(AuthError, match="revoked"):
        env.auth.refresh(pair.refresh_token)


def test_logout_everywhere_and_password_change_end_all_sessions(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    one = env.auth.authenticate("alice", PASSWORD)
    two = env.auth.authenticate("alice", PASSWORD)
    principal = env.auth.verify_access(one.access_token)

    env.auth.change_password(principal, PASSWORD, "a brand new passphrase")

    for pair in (one, two):
        with pytest.raises(AuthError):
            env.auth.refresh(pair.refresh_token)
    with pytest.raises(AuthError):
        env.auth.authenticate("alice", PASSWORD)
    env.auth.authenticate("alice", "a brand new passphrase")


# ---------------------------------------------------------------------- roles
def test_change_role_is_admin_only_and_applies_to_live_tokens(env: Env) -> None:
    admin = env.user("root", Role.ADMIN)
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    alice_token = env.auth.authenticate("alice", PASSWORD).access_token
    alice = env.auth.verify_access(alice_token)

    with pytest.raises(PermissionDenied):
        env.auth.change_role(alice, "alice", Role.ADMIN)
    env.auth.change_role(admin, "alice", Role.VIEWER)

    assert env.auth.verify_access(alice_token).role == Role.VIEWER  # no need to wait for the token to expire


def test_last_admin_cannot_be_demoted_or_disabled(env: Env) -> None:
    admin = env.user("root", Role.ADMIN)
    with pytest.raises(LastAdminError):
        env.auth.change_role(admin, "root", Role.TRADER)
    with pytest.raises(LastAdminError):
        env.auth.set_disabled(admin, "root", True)

    env.auth.create_user("second", PASSWORD, Role.ADMIN)
    env.auth.change_role(admin, "root", Role.TRADER)


def test_role_ranks() -> None:
    def principal(role: Role) -> Principal:
        return Principal(1, "x", role, PrincipalKind.USER)

    assert principal(Role.ADMIN).allows(Role.TRADER)
    assert principal(Role.TRADER).allows(Role.VIEWER)
    assert not principal(Role.VIEWER).allows(Role.TRADER)
    assert not principal(Role.SERVICE).allows(Role.ADMIN)


# ---------------------------------------------------------------------- API keys, service tokens
def test_api_key_is_shown_once_stored_hashed_and_acts_as_its_user(env: Env) -> None:
    alice = env.user("alice", Role.TRADER)

    issued = env.auth.create_api_key(alice, "my script")
    principal = env.auth.verify_bearer(issued.secret)

    assert issued.secret.startswith("tfk_")
    assert (principal.username, principal.role, principal.kind) == ("alice", Role.TRADER, PrincipalKind.API_KEY)
    stored = str(env.scalar("SELECT key_hash FROM api_keys WHERE id = :id", id=issued.id))
    assert issued.secret.split("_", 2)[2] not in stored
    assert issued.secret not in repr(issued)
    assert env.scalar("SELECT last_used_ms FROM api_keys WHERE id = :id", id=issued.id) == START_MS


def test_wrong_and_revoked_api_keys_are_refused(env: Env) -> None:
    alice = env.user("alice", Role.TRADER)
    issued = env.auth.create_api_key(alice, "my script")

    with pytest.raises(AuthError):
        env.auth.verify_api_key(issued.secret[:-3] + "xyz")
    with pytest.raises(AuthError):
        env.auth.verify_api_key("tfk_000000000000_nothing")
    env.auth.revoke_api_key(alice, issued.id)
    with pytest.raises(AuthError, match="revoked"):
        env.auth.verify_api_key(issued.secret)
    assert [k.revoked for k in env.auth.list_api_keys(alice)] == [True]


def test_users_cannot_revoke_each_others_keys_but_admins_can(env: Env) -> None:
    alice = env.user("alice", Role.TRADER)
    bob = env.user("bob", Role.TRADER)
    admin = env.user("root", Role.ADMIN)
    issued = env.auth.create_api_key(alice, "k")

    with pytest.raises(PermissionDenied):
        env.auth.revoke_api_key(bob, issued.id)
    env.auth.revoke_api_key(admin, issued.id)


def test_api_key_cannot_mint_more_api_keys(env: Env) -> None:
    alice = env.user("alice", Role.TRADER)
    via_key = env.auth.verify_api_key(env.auth.create_api_key(alice, "k").secret)

    with pytest.raises(PermissionDenied):
        env.auth.create_api_key(via_key, "another")


def test_service_tokens_are_admin_made_and_verify_as_service(env: Env) -> None:
    admin = env.user("root", Role.ADMIN)
    trader = env.user("alice", Role.TRADER)

    with pytest.raises(PermissionDenied):
        env.auth.create_service_token(trader, "n8n")
    issued = env.auth.create_service_token(admin, "n8n")
    principal = env.auth.verify_bearer(issued.secret)

    assert (principal.username, principal.role, principal.kind) == ("n8n", Role.SERVICE, PrincipalKind.SERVICE)
    env.auth.revoke_service_token(admin, issued.id)
    with pytest.raises(AuthError):
        env.auth.verify_bearer(issued.secret)


def test_inter_service_token_from_settings(env: Env) -> None:
    principal = env.auth.verify_bearer(INTER_SERVICE)

    assert (principal.role, principal.kind, principal.user_id) == (Role.SERVICE, PrincipalKind.SERVICE, None)
    with pytest.raises(AuthError):
        env.auth.verify_bearer(INTER_SERVICE + "x")
    unset = AuthService(SqlAuthRepository(env.engine), load_or_create_keys(env.data_dir), env.clock)
    with pytest.raises(AuthError):
        unset.verify_bearer(INTER_SERVICE)


# ---------------------------------------------------------------------- rate limiting
def test_five_failures_lock_the_username_for_five_minutes(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.TRADER)
    for _ in range(5):
        with pytest.raises(AuthError):
            env.auth.authenticate("alice", "wrong password!!", ip="10.0.0.9")
        env.advance(10)

    with pytest.raises(RateLimited) as caught:
        env.auth.authenticate("alice", PASSWORD, ip="10.0.0.10")  # even the right password, from elsewhere
    assert caught.value.retry_after == 300 - 50
    assert caught.value.http_status == 429

    env.advance(caught.value.retry_after)
    env.auth.authenticate("alice", PASSWORD)


def test_failures_for_unknown_users_count_too(env: Env) -> None:
    for _ in range(5):
        with pytest.raises(AuthError):
            env.auth.authenticate("ghost", "wrong password!!")
    with pytest.raises(RateLimited):
        env.auth.authenticate("ghost", "wrong password!!")


def test_one_ip_spraying_usernames_is_limited(env: Env) -> None:
    for i in range(20):
        with pytest.raises(AuthError):
            env.auth.authenticate(f"user{i}", "wrong password!!", ip="203.0.113.5")
    env.auth.create_user("alice", PASSWORD, Role.TRADER)

    with pytest.raises(RateLimited):
        env.auth.authenticate("alice", PASSWORD, ip="203.0.113.5")
    env.auth.authenticate("alice", PASSWORD, ip="198.51.100.1")


# ---------------------------------------------------------------------- first run
def test_first_run_creates_admin_with_a_generated_password_once(env: Env) -> None:
    first = env.auth.ensure_admin(environ={})

    assert first is not None and first.username == "admin"
    assert first.password is not None and len(first.password) >= 12
    assert first.password not in repr(first)
    admin = env.auth.verify_access(env.auth.authenticate("admin", first.password).access_token)
    assert admin.role == Role.ADMIN
    assert env.auth.ensure_admin(environ={}) is None


def test_first_run_admin_password_from_the_environment(env: Env) -> None:
    first = env.auth.ensure_admin(environ={"TRADEFLEET_ADMIN_PASSWORD": "operator chosen secret"})

    assert first is not None and first.password is None  # nothing to print: the operator knows it
    env.auth.authenticate("admin", "operator chosen secret")


def test_first_run_refuses_a_weak_admin_password_from_the_environment(env: Env) -> None:
    with pytest.raises(ConfigError, match="TRADEFLEET_ADMIN_PASSWORD"):
        env.auth.ensure_admin(environ={"TRADEFLEET_ADMIN_PASSWORD": "short"})


def test_no_admin_is_made_when_users_exist(env: Env) -> None:
    env.auth.create_user("alice", PASSWORD, Role.ADMIN)
    assert env.auth.ensure_admin(environ={}) is None
