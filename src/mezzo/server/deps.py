"""What routes take from the application: the `Mezzo` service, the authenticated tenant and the
event fan-out.

They live on `app.state` (set by `create_app` and its lifespan), so routers are plain
module-level objects that any app can include.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Header, Path
from starlette.requests import HTTPConnection

from mezzo.bounds import ID_MAX, ID_PATTERN
from mezzo.server.auth import Authenticator, Principal
from mezzo.server.fanout import Fanout
from mezzo.service import Mezzo

# Ids in paths, as `mezzo.bounds` defines them: anything else is a 422 before the route runs.
_ID_DOC = "letters, digits and `_ . : -`, starting with a letter or a digit, at most 128"
WorkspaceId = Annotated[
    str, Path(pattern=ID_PATTERN.pattern, max_length=ID_MAX, description=f"workspace id: {_ID_DOC}")
]
RunId = Annotated[
    str, Path(pattern=ID_PATTERN.pattern, max_length=ID_MAX, description=f"run id: {_ID_DOC}")
]
FileId = Annotated[
    str, Path(pattern=ID_PATTERN.pattern, max_length=ID_MAX, description=f"file id: {_ID_DOC}")
]
JobId = Annotated[
    str, Path(pattern=ID_PATTERN.pattern, max_length=ID_MAX, description=f"job id: {_ID_DOC}")
]


def get_mezzo(connection: HTTPConnection) -> Mezzo:
    return cast(Mezzo, connection.app.state.mezzo)


def get_fanout(connection: HTTPConnection) -> Fanout:
    return cast(Fanout, connection.app.state.fanout)


def get_auth(connection: HTTPConnection) -> Authenticator:
    return cast(Authenticator, connection.app.state.auth)


async def current_principal(
    auth: Annotated[Authenticator, Depends(get_auth)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    return await auth.principal(authorization)


async def current_tenant(
    auth: Annotated[Authenticator, Depends(get_auth)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    return await auth.tenant(authorization)


async def require_admin(
    auth: Annotated[Authenticator, Depends(get_auth)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The admin key's tenant; 401 without a valid key, 403 for a key that is not an admin's."""
    return await auth.admin(authorization)


App = Annotated[Mezzo, Depends(get_mezzo)]
Tenant = Annotated[str, Depends(current_tenant)]
Who = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[str, Depends(require_admin)]
