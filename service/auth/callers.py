"""Who a request or WebSocket acts for, and the one place its key is checked again."""

from __future__ import annotations

from collections.abc import Hashable

from service.auth.api_keys import ApiKeyRegistry, Principal
from service.auth.row_scope import NO_READS, RowScope
from service.errors import UnauthenticatedError


class Caller:
    """The principal a request or connection acts for, and the credentials it showed.

    An HTTP request is authenticated once, by the middleware in front of /graphql. A WebSocket
    keeps one caller for all its operations and checks its key again (`recheck`) before each
    operation and each delivered change, so a key revoked meanwhile, or open development mode
    ended, stops working on connections already open.
    """

    def __init__(
        self,
        registry: ApiKeyRegistry,
        principal: Principal | None,
        *,
        credentials: str | None,
        proxied: bool,
    ) -> None:
        self._registry = registry
        self._credentials = credentials
        self._proxied = proxied
        self.principal = principal
        # Why the key stopped working (revoked, expired, ...), once a recheck refused it.
        self.refusal: str | None = None

    @property
    def row_scope(self) -> RowScope:
        """The rows the caller's sessions see; without a principal, none."""
        return self.principal.row_scope if self.principal is not None else NO_READS

    def require(self, message: str | None = None) -> Principal:
        """The principal; reading anything needs one. Without it, raises `message`, or else
        why a recheck refused the key."""
        if self.principal is None:
            raise UnauthenticatedError(message or self.refusal or "the API key is no longer valid")
        return self.principal

    async def authenticate(self, credentials: str | None) -> bool:
        """Act for whoever `credentials` name from now on; raises UnauthenticatedError if
        nobody. Returns whether the principal changed."""
        principal = await self._registry.authenticate(credentials, proxied=self._proxied)
        self._credentials = credentials
        changed = principal != self.principal
        self.principal = principal
        self.refusal = None
        return changed

    async def recheck(self) -> bool:
        """Drop the principal when its key was revoked or expired (or open mode ended) since it
        was checked, so later operations are refused, and remember why (`refusal`). Returns
        whether the principal changed."""
        if self.principal is None:
            return False
        try:
            return await self.authenticate(self._credentials)
        except UnauthenticatedError as error:
            self.principal = None
            self.refusal = str(error)
            return True


def writer_key(principal: Principal | None, address: str | None) -> Hashable:
    """Whom a mutation's read-your-writes window is kept for: its API key; without keys (open
    mode), the client's address, so that clients behind one proxy share a window (they read
    the primary a little more often than they need, never a replica too early)."""
    if principal is not None and principal.key_id is not None:
        return ("key", principal.key_id)
    return ("address", address)
