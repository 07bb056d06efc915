"""Partner credentials at rest: Fernet (AES-128-CBC + HMAC) with the key in LENDING_ENCRYPTION_KEY.

Ciphertexts are stored in the database; the key lives only in the environment of the processes
that talk to partners. Error messages name what could not be decrypted, never the key or value.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from .settings import Settings

KEY_ENV = "LENDING_ENCRYPTION_KEY"


class EncryptionKeyError(RuntimeError):
    """The key is missing, malformed, or not the one a value was encrypted with."""


class SecretBox:
    """Encrypts and decrypts short secrets (passwords, consumer secrets, credentials)."""

    def __init__(self, key: str | None) -> None:
        if not key:
            raise EncryptionKeyError(
                f"{KEY_ENV} is not set: partner credentials cannot be encrypted or read "
                "(`make dev` generates one under LENDING_HOME; production must set it)"
            )
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError):
            raise EncryptionKeyError(
                f"{KEY_ENV} is not a valid Fernet key (32 url-safe base64-encoded bytes)"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(settings.encryption_key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

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
                f"cannot decrypt {what}: it was encrypted with another {KEY_ENV}"
            ) from None
