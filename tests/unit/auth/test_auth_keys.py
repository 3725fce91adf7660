"""Key files: generated on first run with private modes, reused later, refused when others can read them."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest

from tradefleet.services.auth import SecretFileError, load_or_create_keys

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_creates_private_directory_and_key_files(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path / "var")

    secrets_dir = tmp_path / "var" / "secrets"
    assert mode(secrets_dir) == 0o700
    assert mode(secrets_dir / "jwt.key") == 0o600
    assert mode(secrets_dir / "fernet.key") == 0o600
    assert len(keys.jwt_key) >= 32
    assert sorted(p.name for p in secrets_dir.iterdir()) == ["fernet.key", "jwt.key"]  # no temporary left


def test_later_runs_load_the_same_keys(tmp_path: Path) -> None:
    first = load_or_create_keys(tmp_path)
    second = load_or_create_keys(tmp_path)

    assert first.jwt_key == second.jwt_key
    assert second.secret_box.decrypt(first.secret_box.encrypt("api-secret")) == "api-secret"


def test_keys_differ_between_data_directories(tmp_path: Path) -> None:
    assert load_or_create_keys(tmp_path / "a").jwt_key != load_or_create_keys(tmp_path / "b").jwt_key


@pytest.mark.parametrize("name", ["jwt.key", "fernet.key"])
@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o620, 0o644])
def test_key_file_accessible_to_others_is_refused(tmp_path: Path, name: str, bad_mode: int) -> None:
    load_or_create_keys(tmp_path)
    (tmp_path / "secrets" / name).chmod(bad_mode)

    with pytest.raises(SecretFileError, match="accessible to other users") as caught:
        load_or_create_keys(tmp_path)
    assert "chmod 600" in caught.value.hint


def test_secrets_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_keys(tmp_path)
    (tmp_path / "secrets").chmod(0o770)

    with pytest.raises(SecretFileError, match="writable by other users"):
        load_or_create_keys(tmp_path)


def test_too_short_jwt_key_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o700)
    key_file = directory / "jwt.key"
    key_file.write_bytes(base64.urlsafe_b64encode(b"x" * 16))
    key_file.chmod(0o600)

    with pytest.raises(SecretFileError, match="too short"):
        load_or_create_keys(tmp_path)


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    found: list[bytes] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            found.append(load_or_create_keys(tmp_path).jwt_key)
        except BaseException as exc:  # checked in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(found)) == 1


def test_secret_box_round_trips_and_rejects_tampering_and_other_keys(tmp_path: Path) -> None:
    box = load_or_create_keys(tmp_path / "a").secret_box
    other = load_or_create_keys(tmp_path / "b").secret_box
    token = box.encrypt("binance-secret")

    assert "binance-secret" not in token
    assert box.decrypt(token) == "binance-secret"
    with pytest.raises(SecretFileError):
        other.decrypt(token)
    tampered = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    with pytest.raises(SecretFileError):
        box.decrypt(tampered)


def test_keys_never_show_in_repr(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)
    assert "hidden" in repr(keys)
    assert base64.urlsafe_b64encode(keys.jwt_key).decode()[:16] not in repr(keys)
