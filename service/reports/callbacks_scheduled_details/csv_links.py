"""The report's CSV download link (`csvUrl`): its path, its parameters and a token signed for
the caller."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from service.auth.api_keys import Principal
from service.auth.signed_links import canonical_query, sign_link
from service.settings import Settings

CSV_PATH = "/reports/callbacks-scheduled-details.csv"
# How long a download link works: long enough to click it, short enough that a link copied
# into a chat or a log is soon worthless.
LINK_LIFETIME = dt.timedelta(minutes=5)

# A CSV request's query parameters, as (name, value) pairs; names may repeat.
QueryParameters = Sequence[tuple[str, str]]


def signed_csv_path(
    parameters: QueryParameters, *, principal: Principal, settings: Settings, now: dt.datetime
) -> str:
    """The CSV path with `parameters` and a `token` signed for `principal`'s key, valid for
    LINK_LIFETIME from `now`."""
    token = sign_link(
        settings.url_signing_secret,
        CSV_PATH,
        parameters,
        key_id=principal.key_id,
        expires_at=now + LINK_LIFETIME,
    )
    query = canonical_query(parameters)
    return f"{CSV_PATH}?{query}&token={token}" if query else f"{CSV_PATH}?token={token}"
