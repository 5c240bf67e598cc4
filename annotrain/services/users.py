"""Users and their API tokens: a token is shown once, only its hash is kept."""

from __future__ import annotations

import hashlib
import secrets

from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.records import ApiToken, User, UserRole
from annotrain.ports import Clock, UserStore

#: How a stored token hash begins: the algorithm, so another can follow later.
TOKEN_HASH_PREFIX = "sha256:"  # noqa: S105 - a hash prefix, not a secret


def hash_token(token: str) -> str:
    """The hash a token is stored and looked up by.

    A plain SHA-256 suffices: the token is 256 random bits, not a password, so
    nothing can be guessed, and looking up by hash leaks no timing on the token.
    """
    return TOKEN_HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(store: UserStore, user: str, clock: Clock, *, label: str = "") -> str:
    """Give an existing user a new API token.

    Returns:
        The token itself: shown to the person once, never stored.
    """
    token = secrets.token_urlsafe(32)
    store.add_token(ApiToken(hash_token(token), user, clock.now(), label))
    return token


def create_user(
    store: UserStore, name: str, role: UserRole, clock: Clock, *, label: str = ""
) -> tuple[User, str]:
    """Create a user with a first API token.

    Raises:
        AlreadyExistsError: The name is taken.
        InvalidRequestError: The name is empty or has surrounding spaces.

    Returns:
        The stored user and the token (shown once, only its hash is kept).
    """
    if not name or name.strip() != name or len(name) > 200:
        raise InvalidRequestError("name", "must be 1 to 200 characters without surrounding spaces")
    user = store.create_user(User(name=name, role=UserRole(role), created_at=clock.now()))
    return user, issue_token(store, user.name, clock, label=label)


#: The name of the admin the first start of a single-node lab creates.
FIRST_ADMIN = "admin"


def create_first_admin(store: UserStore, clock: Clock) -> tuple[str, str] | None:
    """Create the first admin of a lab that has no users yet.

    Returns:
        The admin's name and API token, or None when the lab has users already.
    """
    if store.list_users(limit=1).items:
        return None
    user, token = create_user(store, FIRST_ADMIN, UserRole.ADMIN, clock, label="first start")
    return user.name, token
