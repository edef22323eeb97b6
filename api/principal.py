"""Who the API is answering (`Principal`) and why it refuses someone: the light part of sign-on,
imported by every request's middleware. The token checks themselves (`api.identity`, PyJWT and
cryptography) are loaded only when `auth.mode = "oidc"`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from query.scope import Role, RowScope

Via = Literal["address", "oidc", "token", "key"]


class AuthRefused(Exception):
    """The caller is not let in: `status` 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)


class ProviderUnavailable(Exception):
    """The identity provider cannot be reached and no keys are cached (503)."""


@dataclass(frozen=True)
class Principal:
    """The caller as the API sees it. `scope` None: every row."""

    subject: str | None
    name: str | None
    role: Role
    scope: RowScope | None
    via: Via
    token_id: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name or self.subject} ({self.role})"
