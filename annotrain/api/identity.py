"""Who is calling: API tokens on a single node, verified JWT claims on serverless.

Both end in one :class:`~annotrain.services.access.Principal`. Single node: the
``Authorization: Bearer <token>`` header; the token's SHA-256 is looked up in the
store (an exact-match lookup of a hash, so comparing takes no token-dependent
time). Serverless: API Gateway's JWT authorizer has verified the Cognito token
already; Mangum passes its event in the ASGI scope, and the app reads the claims
from ``requestContext.authorizer.jwt.claims``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from annotrain.api.errors import NotAuthenticatedError
from annotrain.domain.errors import NotFoundError
from annotrain.domain.records import UserRole
from annotrain.ports import UserStore
from annotrain.services.access import Principal
from annotrain.services.users import hash_token

#: The Cognito group whose members are lab admins.
ADMIN_GROUP = "admin"


def principal_from_token(request: Request, users: UserStore) -> Principal:
    """The user whose API token the request carries.

    Raises:
        NotAuthenticatedError: No bearer token, or one that is unknown or revoked.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticatedError("send an API token as 'Authorization: Bearer <token>'")
    stored = users.find_token(hash_token(token))
    if stored is None:
        raise NotAuthenticatedError("the API token is not valid")
    try:
        user = users.get_user(stored.user)
    except NotFoundError:
        raise NotAuthenticatedError("the API token is not valid") from None
    return Principal(user.name, is_admin=user.role == UserRole.ADMIN)


def principal_from_claims(request: Request) -> Principal:
    """The user API Gateway's JWT authorizer verified, from the event Mangum passes.

    Raises:
        NotAuthenticatedError: The request did not come through the authorizer.
    """
    event = request.scope.get("aws.event")
    claims: Any = None
    if isinstance(event, Mapping):
        claims = event.get("requestContext", {}).get("authorizer", {}).get("jwt", {}).get("claims")
    if not isinstance(claims, Mapping):
        raise NotAuthenticatedError("the request carries no verified identity")
    name = claims.get("username") or claims.get("cognito:username")
    if not isinstance(name, str) or not name:
        raise NotAuthenticatedError("the verified identity names no user")
    return Principal(name, is_admin=ADMIN_GROUP in _groups(claims.get("cognito:groups")))


def _groups(value: Any) -> list[str]:
    # API Gateway passes a list claim as the string "[admin annotators]".
    if isinstance(value, list):
        return [str(group) for group in value]
    if isinstance(value, str):
        return value.strip("[]").replace(",", " ").split()
    return []
