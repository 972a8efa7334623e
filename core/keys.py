"""API keys: made, looked up by hash and revoked. The secret is shown once, never stored."""

import contextlib
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core.models import ApiKey

SECRET_PREFIX = "oa_"


@dataclass(frozen=True)
class Principal:
    """Who is asking: an API key's owner, and whether the key sees every owner's jobs."""

    key_id: uuid.UUID
    owner: str
    admin: bool


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, *, owner: str, admin: bool = False) -> tuple[ApiKey, str]:
        """A new key for the owner, and its secret (256 random bits)."""
        owner = owner.strip()
        if not owner or len(owner) > 200:
            raise ValueError("an owner is a name of 1 to 200 characters")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id=uuid.uuid4(),
            owner=owner,
            prefix=secret[:10],
            key_sha256=hash_key(secret),
            admin=admin,
        )
        self.session.add(key)
        self.session.flush()
        return key, secret

    def authenticate(self, secret: str) -> ApiKey | None:
        """The live key with this secret, if any."""
        return self.session.scalars(
            select(ApiKey).where(ApiKey.key_sha256 == hash_key(secret), ApiKey.revoked_at.is_(None))
        ).one_or_none()

    def revoke(self, ident: str) -> list[ApiKey]:
        """Revoke the live keys whose id or prefix is `ident`; those revoked."""
        match = [ApiKey.prefix == ident]
        with contextlib.suppress(ValueError):
            match.append(ApiKey.id == uuid.UUID(ident))
        return list(
            self.session.scalars(
                update(ApiKey)
                .where(or_(*match), ApiKey.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
                .returning(ApiKey)
            )
        )

    def all(self, *, owner: str | None = None) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if owner is not None:
            query = query.where(ApiKey.owner == owner)
        return list(self.session.scalars(query))
