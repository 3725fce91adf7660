"""Secret keys generated on first run into ``<data_dir>/secrets`` (directory 0700, files 0600).

``jwt.key`` signs access tokens (HS256, 512 random bits); ``fernet.key`` encrypts exchange API keys at
rest (:class:`SecretBox`). A key file is created atomically (written to a temporary file, then linked
into place), so processes starting at once agree on one key. A key file that others may read or write,
or a secrets directory others may write, is refused: the service does not start on a leaked key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from tradefleet.services.auth.errors import SecretFileError

SECRETS_DIR = "secrets"
JWT_KEY_FILE = "jwt.key"
FERNET_KEY_FILE = "fernet.key"
JWT_KEY_BYTES = 64  # HS256 hashes keys longer than its 64-byte block, so more would add nothing
MIN_JWT_KEY_BYTES = 32  # 256 bits, RFC 7518 §3.2

_POSIX = os.name == "posix"


@dataclass(frozen=True)
class AuthKeys:
    """The keys the auth service needs: the JWT signing key and the at-rest cipher."""

    jwt_key: bytes
    secret_box: SecretBox

    def __repr__(self) -> str:  # never print key material
        return "AuthKeys(jwt_key=<hidden>, secret_box=<hidden>)"


class SecretBox:
    """Encrypt short secrets (exchange API keys) for storage: Fernet, AES-128-CBC with HMAC-SHA256."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, plaintext: str) -> str:
        """Return an authenticated, timestamped ciphertext of ``plaintext`` as ASCII text."""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Return the plaintext, or raise :class:`SecretFileError` if the text was not made with this key."""
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise SecretFileError(
                "cannot decrypt a stored secret: it was tampered with or encrypted with another fernet.key",
                hint="restore the fernet.key the secret was stored with, or enter the exchange keys again",
            ) from exc

    def __repr__(self) -> str:
        return "SecretBox(<hidden>)"


def load_or_create_keys(data_dir: Path) -> AuthKeys:
    """Load the keys under ``data_dir/secrets``, generating any that do not exist yet."""
    directory = secrets_dir(data_dir)
    jwt_key = _decode_jwt_key(load_or_create_key_file(directory / JWT_KEY_FILE, _new_jwt_key))
    fernet_key = load_or_create_key_file(directory / FERNET_KEY_FILE, Fernet.generate_key)
    try:
        box = SecretBox(fernet_key)
    except ValueError:
        raise SecretFileError(
            f"{directory / FERNET_KEY_FILE}: not a Fernet key",
            hint="restore the file from a backup; deleting it makes stored exchange keys unreadable",
        ) from None
    return AuthKeys(jwt_key=jwt_key, secret_box=box)


def secrets_dir(data_dir: Path) -> Path:
    """Return ``data_dir/secrets``, created with mode 0700 if missing, refused if others may write it."""
    directory = data_dir / SECRETS_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _POSIX:
        mode = stat.S_IMODE(directory.stat().st_mode)
        if mode & 0o022:
            raise SecretFileError(
                f"{directory}: the secrets directory is writable by other users (mode {mode:o})",
                hint=f"run `chmod 700 {directory}` and check that no one replaced the key files",
            )
    return directory


def load_or_create_key_file(path: Path, generate: Callable[[], bytes]) -> bytes:
    """Return the content of the key file at ``path``, creating it (mode 0600) with ``generate()`` first."""
    if not path.exists():
        _create_atomically(path, generate().strip() + b"\n")
    _check_private(path)
    content = path.read_bytes().strip()
    if not content:
        raise SecretFileError(f"{path}: the key file is empty", hint="restore it from a backup or delete it")
    return content


def _check_private(path: Path) -> None:
    if not _POSIX:  # pragma: no cover - Windows has no mode bits; the data directory's ACL protects it
        return
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise SecretFileError(
            f"{path}: the key file is accessible to other users (mode {mode:o}); refusing to use a key "
            "that may have leaked",
            hint=f"run `chmod 600 {path}`, and rotate the key (delete it) if anyone else could read it",
        )
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError(f"{path}: not a regular file")


def _create_atomically(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _new_jwt_key() -> bytes:
    return base64.urlsafe_b64encode(secrets.token_bytes(JWT_KEY_BYTES))


def _decode_jwt_key(content: bytes) -> bytes:
    try:
        key = base64.urlsafe_b64decode(content)
    except (binascii.Error, ValueError):
        raise SecretFileError("jwt.key: not base64 text", hint="restore it from a backup or delete it") from None
    if len(key) < MIN_JWT_KEY_BYTES:
        raise SecretFileError(
            f"jwt.key: {len(key) * 8} bits is too short for HS256 (at least {MIN_JWT_KEY_BYTES * 8})",
            hint="delete the file to generate a new key (everyone logs in again)",
        )
    return key
