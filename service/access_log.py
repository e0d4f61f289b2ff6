"""The access log without the secrets a URL may carry.

A report's CSV link holds a token that stands in for the caller's key for a few minutes
(`service.auth.signed_links`), so anyone who reads the access log within that time could
download what the caller may read. uvicorn logs each request's path with its query string;
this filter keeps a token's expiry and key id, which say whose link it was and when it stops
working, and drops its signature, the part that grants access.
"""

from __future__ import annotations

import logging
import re

# `token=<expires>.<key id>.<signature>`: the signature is everything after the second dot.
_TOKEN_SIGNATURE = re.compile(r"((?:^|[?&])token=[^.&]*\.[^.&]*\.)[^&]*|((?:^|[?&])token=)[^&]*")
REDACTED = "[redacted]"


def redact_link_tokens(path: str) -> str:
    """`path` with each `token` parameter's signature (or, when it has no signature's shape,
    its whole value) replaced by REDACTED."""
    if "token=" not in path:
        return path
    return _TOKEN_SIGNATURE.sub(lambda match: (match[1] or match[2]) + REDACTED, path)


class LinkTokenRedaction(logging.Filter):
    """Redacts link tokens in uvicorn's access log records, whose third argument is the
    request's path with its query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        arguments = record.args
        if isinstance(arguments, tuple) and len(arguments) >= 3 and isinstance(arguments[2], str):
            redacted = redact_link_tokens(arguments[2])
            if redacted != arguments[2]:
                record.args = (*arguments[:2], redacted, *arguments[3:])
        return True
