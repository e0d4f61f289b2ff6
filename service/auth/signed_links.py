"""Links signed for a caller: a path and its query parameters, with a `token` that stands in for
the caller's API key for a few minutes, so a plain browser link can download what the caller
may read without an Authorization header.

The token is an HMAC-SHA256, under the service's signing secret, over the key it was signed for
(its id, or "open" in open development mode), the expiry, the path and the canonical form of
exactly the parameters; it carries the key id and expiry in the clear so they can be checked.
Changing, adding or dropping any parameter, or the expiry or key id, breaks the signature. The
key itself is looked up again when the link is used (`ApiKeyRegistry.authenticate_key_id`),
so a revoked key's links stop working at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import quote, urlencode

from service.errors import UnauthenticatedError

# Stands in the token for the key id when the link was signed in open development mode.
OPEN_MODE_KEY = "open"
# Part of every signed message, so a signature made for anything else never fits a link.
_PURPOSE = "pomreport-link-v1"


def canonical_query(parameters: Iterable[tuple[str, str]]) -> str:
    """The parameters as one query string, sorted by name and value, percent-encoded: the
    form a link shows and its token signs. Their order means nothing (several values of one
    name are a set to the report), so a client that reorders them keeps a valid link."""
    return urlencode(sorted(parameters), quote_via=quote, safe="")


def sign_link(
    secret: str,
    path: str,
    parameters: Iterable[tuple[str, str]],
    *,
    key_id: int | None,
    expires_at: dt.datetime,
) -> str:
    """The token for `path` with exactly `parameters`, for the key `key_id` (None: open
    development mode), valid until `expires_at`."""
    key = OPEN_MODE_KEY if key_id is None else str(key_id)
    expires = str(int(expires_at.timestamp()))
    signature = _signature(secret, key, expires, path, canonical_query(parameters))
    return f"{expires}.{key}.{signature}"


def verify_link(
    secret: str,
    path: str,
    parameters: Iterable[tuple[str, str]],
    token: str,
    *,
    now: dt.datetime,
) -> int | None:
    """The id of the key a link's token was signed for (None: open development mode); raises
    UnauthenticatedError when the token is malformed, does not fit the path and parameters,
    or has expired."""
    expires, _, rest = token.partition(".")
    key, _, signature = rest.partition(".")
    if not (expires.isdigit() and (key == OPEN_MODE_KEY or key.isdigit()) and signature):
        raise UnauthenticatedError("the link's token is malformed; get a new link from the report")
    expected = _signature(secret, key, expires, path, canonical_query(parameters))
    # Compared in constant time, so the response time does not tell how much of it was right.
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise UnauthenticatedError(
            "the link's token does not fit its parameters (they were changed, or the link "
            "was signed by another service); get a new link from the report"
        )
    expires_at = dt.datetime.fromtimestamp(int(expires), dt.UTC)
    if now >= expires_at:
        raise UnauthenticatedError(
            f"the link expired at {expires_at.isoformat()}; get a new link from the report"
        )
    return None if key == OPEN_MODE_KEY else int(key)


def _signature(secret: str, key: str, expires: str, path: str, query: str) -> str:
    message = "\n".join((_PURPOSE, key, expires, path, query)).encode()
    digest = hmac.digest(secret.encode(), message, hashlib.sha256)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
