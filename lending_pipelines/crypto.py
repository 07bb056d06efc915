"""Partner credentials at rest: Fernet (AES-128-CBC + HMAC) with keys in LENDING_ENCRYPTION_KEY.

The variable holds one key, or several separated by commas during a rotation: the first key
encrypts, every key decrypts (`MultiFernet`). Rotating is: put the new key first, run
`lending secrets rotate` (re-encrypts every stored secret with the first key), then drop the old
key. Ciphertexts are stored in the database; the keys live only in the environment of the
processes that talk to partners. Errors name what could not be decrypted, never a key or value.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .settings import Settings, reveal

KEY_ENV = "LENDING_ENCRYPTION_KEY"


class EncryptionKeyError(RuntimeError):
    """The key is missing, malformed, or not the one a value was encrypted with."""


def _fernet(key: str, position: int) -> Fernet:
    try:
        return Fernet(key.encode())
    except (ValueError, TypeError):
        raise EncryptionKeyError(
            f"{KEY_ENV} key #{position} is not a valid Fernet key "
            "(32 url-safe base64-encoded bytes)"
        ) from None


class SecretBox:
    """Encrypts (with the first key) and decrypts (with any key) short secrets."""

    def __init__(self, keys: str | None) -> None:
        parts = [part.strip() for part in (keys or "").split(",") if part.strip()]
        if not parts:
            raise EncryptionKeyError(
                f"{KEY_ENV} is not set: partner credentials cannot be encrypted or read "
                "(`make dev` generates one under LENDING_HOME; production must set it)"
            )
        self._fernet = MultiFernet([_fernet(key, n) for n, key in enumerate(parts, start=1)])
        self.key_count = len(parts)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(reveal(settings.encryption_key))

    def __repr__(self) -> str:
        return f"SecretBox(<{self.key_count} key(s) hidden>)"

    def encrypt(self, plaintext: str | None) -> str | None:
        return None if plaintext is None else self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str | None, what: str) -> str | None:
        """`what` names the value for the error, e.g. "partner 'acme' fineract_password"."""
        if token is None:
            return None
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise EncryptionKeyError(
                f"cannot decrypt {what}: it was encrypted with a key that is not in {KEY_ENV}"
            ) from None

    def rotate(self, token: str | None, what: str) -> str | None:
        """The same secret re-encrypted with the first key (any key may have encrypted it)."""
        if token is None:
            return None
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise EncryptionKeyError(
                f"cannot re-encrypt {what}: it was encrypted with a key that is not in {KEY_ENV}"
            ) from None
