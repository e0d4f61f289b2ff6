"""`GET /reports/callbacks-scheduled-details.csv`: the report as CSV, streamed (SPEC 6).

A request is checked completely before the first byte goes out: its key (or its link's token)
and the key's rate limit, its parameters, the report's period and filters, and the SELECT
itself, which is opened and its first chunk of rows read. Anything wrong until then is an HTTP
error with a one-line plain-text reason and no file. From then on the rows are read from a
server-side cursor a chunk at a time and each chunk is written out before the next is read, so
memory stays the same whatever the size. A failure after that cannot become an error status any
more: it is logged and the response is cut off (no closing chunk), which clients report as an
incomplete download rather than a shorter file.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import enum
import io
import logging
import zoneinfo
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, String, cast, func, select, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncResult
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from service.auth.api_keys import ApiKeyRegistry, Principal
from service.auth.callers import writer_key
from service.auth.http import is_proxied
from service.auth.row_scope import RowScope
from service.auth.signed_links import verify_link
from service.clock import utc_now
from service.db.models.callback import Callback, CallbackType, created_for
from service.db.models.campaign import Campaign, CampaignType, campaign_display_name
from service.db.replicas import Replicas
from service.errors import (
    RETRY_AFTER_SECONDS,
    BadUserInputError,
    RateLimitedError,
    UnauthenticatedError,
    masked_error,
)
from service.reports.callbacks_scheduled_details.csv_links import CSV_PATH
from service.reports.callbacks_scheduled_details.csv_parameters import (
    TOKEN_PARAMETER,
    CsvParameterError,
    parse_csv_parameters,
)
from service.reports.callbacks_scheduled_details.labels import (
    CALLBACK_STATUS_LABELS,
    CALLBACK_TYPE_LABELS,
    ROW_LABELS,
    SYSTEM_COMPLETION_CODE_LABELS,
)
from service.reports.callbacks_scheduled_details.query import report_header
from service.reports.callbacks_scheduled_details.types import TimePeriod
from service.reports.callbacks_scheduled_details.zoned_times import iso_text_in_zone

logger = logging.getLogger(__name__)

# Rows read from the cursor and written out at a time: some 500 KB of CSV, few enough round
# trips that they cost little, small enough that memory stays flat.
CHUNK_ROWS = 2_000
# Rows written between two turns of the event loop (see CsvExport).
SLICE_ROWS = 500
# A cell starting with one of these is a formula to a spreadsheet (OWASP, CSV injection); such
# cells get a leading apostrophe, which spreadsheets show as text and do not display.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

Row = Sequence[Any]
Cells = Sequence[str]
EnumT = TypeVar("EnumT", bound=enum.Enum)


async def download_csv(request: Request) -> Response:
    """The report as a CSV file, for the caller's key or the link's token (SPEC 6)."""
    state = request.app.state
    items = request.query_params.multi_items()
    tokens = [value for name, value in items if name == TOKEN_PARAMETER]
    parameters = [(name, value) for name, value in items if name != TOKEN_PARAMETER]
    try:
        principal = await _authenticate(request, tokens, parameters)
        await state.rate_limits.check(principal)
        time_period, filters = parse_csv_parameters(parameters)
        header = report_header(state.settings, time_period, filters)
    except UnauthenticatedError as error:
        return _refusal(401, error.message)
    except RateLimitedError as error:
        return PlainTextResponse(
            _one_line(error.message),
            status_code=429,
            headers={"retry-after": str(error.retry_after)},
        )
    except CsvParameterError as error:
        return _refusal(400, str(error))
    except BadUserInputError as error:
        # The report's messages name the GraphQL input (`timePeriod.lastDays`); here the
        # parameter is plain `lastDays`.
        return _refusal(400, error.message.replace("timePeriod.", ""))
    except Exception as error:
        return _failure(error)
    filename = csv_filename(header.time_period)
    if request.method == "HEAD":
        # What a GET would answer, without reading a row: a HEAD must not cost an export.
        return Response(media_type=CSV_MEDIA_TYPE, headers=_download_headers(filename))
    statement = report_rows_statement(header.condition, principal.row_scope, state.engine.dialect)
    zone = zoneinfo.ZoneInfo(header.time_period.time_zone)
    replicas: Replicas = state.replicas
    client = request.client.host if request.client else None
    target = replicas.target(
        writer_key(principal, client), wrote_recently=replicas.client_wrote(request)
    )
    try:
        try:
            replicas.count(target)
            export = await CsvExport.open(target.engine, statement, zone)
        except Exception as error:
            if not replicas.failed(target, error):
                raise
            # Nothing is sent yet: the primary answers instead of the replica that failed.
            replicas.count(replicas.primary)
            export = await CsvExport.open(replicas.primary.engine, statement, zone)
    except Exception as error:
        return _failure(error)
    return CsvResponse(export, filename)


async def _authenticate(
    request: Request, tokens: list[str], parameters: list[tuple[str, str]]
) -> Principal:
    """Who the download is for: the link's token when it has one, else the Authorization
    header, as on /graphql."""
    registry: ApiKeyRegistry = request.app.state.api_keys
    proxied = is_proxied(request.scope)
    if not tokens:
        return await registry.authenticate(request.headers.get("authorization"), proxied=proxied)
    if len(tokens) > 1:
        raise UnauthenticatedError("the link has more than one token; get a new link")
    key_id = verify_link(
        request.app.state.settings.url_signing_secret,
        CSV_PATH,
        parameters,
        tokens[0],
        now=utc_now(),
    )
    return await registry.authenticate_key_id(key_id, proxied=proxied)


def report_rows_statement(
    condition: ColumnElement[bool], scope: RowScope, dialect: Dialect
) -> Select[*tuple[Any, ...]]:
    """The report's rows as the CSV writes them, by creation time then callback ID: one
    SELECT. Every column but the campaign's is the callback's own (the latest attempt's
    agent, time and codes are kept on it, as the report reads them), so the campaign is the
    only join. The row scope is the one every GraphQL read gets.

    Enums come as their names and times as UTC wall-clock text (PostgreSQL's
    `timezone('UTC', t)::text`; SQLite's stored text), without the per-value conversions the
    ORM types make: those, and making datetimes of the times only to write them out again,
    were most of a row's cost at a million rows (bench/README.md, CSV export; zoned_times.py
    writes the text in the period's zone).
    """

    def name(column: Any) -> Any:
        return type_coerce(column, String())

    def instant(column: Any) -> Any:
        if dialect.name == "sqlite":
            return type_coerce(column, String())  # stored as naive UTC text
        return cast(func.timezone("UTC", column), String())

    return (
        select(
            Callback.campaign_id,
            Campaign.name,
            name(Campaign.campaign_type),
            Campaign.strategy_name,
            Callback.job_id,
            Callback.creator_agent_id,
            Callback.callback_id,
            name(Callback.callback_type),
            Callback.created_for_agent_id,
            Callback.contact_id,
            instant(Callback.created_at),
            instant(Callback.scheduled_start_at),
            instant(Callback.scheduled_end_at),
            name(Callback.status),
            Callback.serviced_by_agent_id,
            instant(Callback.last_attempt_at),
            Callback.custom_completion_code,
            name(Callback.system_completion_code),
        )
        .join_from(Callback, Campaign, Callback.campaign_id == Campaign.id)
        .where(condition, scope.callback_condition())
        .order_by(Callback.created_at, Callback.callback_id)
    )


def guard_formula(value: str) -> str:
    """A cell a spreadsheet would run as a formula, made text; anything else as it is."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def _by_name(labels: Mapping[EnumT, str]) -> dict[str, str]:
    return {value.name: label for value, label in labels.items()}


# The report's labels by enum name, as report_rows_statement reads the enums.
_TYPE_LABELS = _by_name(CALLBACK_TYPE_LABELS)
_STATUS_LABELS = _by_name(CALLBACK_STATUS_LABELS)
_CODE_LABELS = _by_name(SYSTEM_COMPLETION_CODE_LABELS)
_CALLBACK_TYPES = {callback_type.name: callback_type for callback_type in CallbackType}


def row_cells(zone: zoneinfo.ZoneInfo) -> Callable[[Row], Cells]:
    """How one row of `report_rows_statement` becomes the CSV's cells (all text, "" for
    none), in ROW_LABELS' order: campaigns by display name, enums by the report's labels,
    times in `zone` with their offset, text guarded against formulas. Made once per
    download; a campaign's names are worked out once. This runs for every row, so it does no
    more than it must."""
    campaigns: dict[int, tuple[str, str]] = {}
    type_labels, status_labels, code_labels = _TYPE_LABELS, _STATUS_LABELS, _CODE_LABELS
    callback_types = _CALLBACK_TYPES
    local_time = iso_text_in_zone(zone)
    guard = guard_formula

    def cells(row: Row) -> Cells:
        (
            campaign_id,
            campaign_name,
            campaign_type,
            strategy_name,
            job_id,
            creator_agent_id,
            callback_id,
            callback_type,
            created_for_agent_id,
            contact_id,
            created_at,
            scheduled_start_at,
            scheduled_end_at,
            status,
            serviced_by_agent_id,
            last_attempt_at,
            custom_completion_code,
            system_completion_code,
        ) = row
        names = campaigns.get(campaign_id)
        if names is None:
            display_name = campaign_display_name(
                CampaignType[campaign_type], strategy_name, campaign_name
            )
            names = campaigns[campaign_id] = (guard(display_name), campaign_name)
        return (
            names[0],
            str(job_id),
            guard(creator_agent_id),
            guard(callback_id),
            type_labels[callback_type],
            guard(created_for(callback_types[callback_type], created_for_agent_id, names[1])),
            guard(contact_id),
            local_time(created_at),
            local_time(scheduled_start_at),
            local_time(scheduled_end_at),
            status_labels[status],
            guard(serviced_by_agent_id) if serviced_by_agent_id else "",
            local_time(last_attempt_at) if last_attempt_at else "",
            guard(custom_completion_code) if custom_completion_code else "",
            code_labels[system_completion_code] if system_completion_code else "",
        )

    return cells


def csv_text(rows: Sequence[Cells]) -> str:
    """Rows of text cells, all as many, as CSV (RFC 4180: fields with a comma, quote or line
    break quoted, quotes doubled, CRLF after each row), exactly as `csv.writer` writes them.

    Nearly every row holds none of the characters that need quoting, and then joining the
    cells with commas is what csv.writer would write, at a quarter of its cost (some 3 µs a
    row of this report's). Whether a chunk holds any is told from the joined text: a quote,
    a comma more than the separators, or a line break more than the row ends. A chunk that
    holds one is written by csv.writer itself.
    """
    if not rows:
        return ""
    text = "\r\n".join([",".join(cells) for cells in rows]) + "\r\n"
    separators = (len(rows[0]) - 1) * len(rows)
    if (
        '"' not in text
        and text.count(",") == separators
        and text.count("\r") == text.count("\n") == len(rows)
    ):
        return text
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def csv_filename(period: TimePeriod) -> str:
    """The file's name: the report's first and last day in the period's zone, or "all"."""
    if period.from_ is None or period.to is None:
        return "callbacks-scheduled-details-all.csv"
    zone = zoneinfo.ZoneInfo(period.time_zone)
    first = period.from_.astimezone(zone).date()
    # The end is exclusive: a period to midnight ends on the day before.
    last = (period.to - dt.timedelta(microseconds=1)).astimezone(zone).date()
    days = first.isoformat() if first == last else f"{first.isoformat()}-to-{last.isoformat()}"
    return f"callbacks-scheduled-details-{days}.csv"


class CsvExport:
    """One download's rows: a streamed SELECT on a connection of its own, and the CSV made
    from it a chunk at a time.

    The next chunk is asked for before this one is written, so the database reads it while
    this process writes: one chunk ahead, never more, so memory stays flat. Writing a chunk
    gives the event loop a turn between slices of it, which the fetch under way needs to go
    on (the server-side cursor fetches a chunk in two round trips).
    """

    def __init__(
        self,
        connection: AsyncConnection,
        result: AsyncResult[Any],
        partitions: AsyncIterator[Sequence[Row]],
        first_rows: Sequence[Row],
        zone: zoneinfo.ZoneInfo,
    ) -> None:
        self._connection = connection
        self._result = result
        self._partitions = partitions
        self._first_rows = first_rows
        self._cells = row_cells(zone)
        self._next_rows: asyncio.Future[Sequence[Row]] | None = None
        self._chunks = self._write()
        self.rows_written = 0

    @classmethod
    async def open(
        cls, engine: AsyncEngine, statement: Select[*tuple[Any, ...]], zone: zoneinfo.ZoneInfo
    ) -> CsvExport:
        """Run the SELECT with a server-side cursor and read its first chunk, so that a
        statement the database refuses is known before anything is sent."""
        connection = await engine.connect()
        try:
            # yield_per: a server-side cursor (asyncpg, aiosqlite), CHUNK_ROWS per fetch.
            result = await connection.stream(statement.execution_options(yield_per=CHUNK_ROWS))
            partitions = result.partitions()
            first_rows = await _next_partition(partitions)
        except BaseException:
            await connection.close()
            raise
        return cls(connection, result, partitions, first_rows, zone)

    def chunks(self) -> AsyncIterator[bytes]:
        """The CSV: the header row, then the rows, CHUNK_ROWS at a time, each chunk encoded
        as soon as its rows are read (RFC 4180: CRLF line ends, quoted where needed)."""
        return self._chunks

    async def _write(self) -> AsyncGenerator[bytes]:
        header = csv_text([ROW_LABELS])
        rows, self._first_rows = self._first_rows, ()
        try:
            while rows:
                self._next_rows = asyncio.ensure_future(_next_partition(self._partitions))
                yield (header + await self._text(rows)).encode()
                header = ""
                self.rows_written += len(rows)
                rows = await self._next_rows
                self._next_rows = None
            if header:  # no rows: the header row alone
                yield header.encode()
        except Exception:
            logger.exception(
                "CSV export failed after %d rows; the download was cut off", self.rows_written
            )
            raise

    async def _text(self, rows: Sequence[Row]) -> str:
        parts = []
        for start in range(0, len(rows), SLICE_ROWS):
            await asyncio.sleep(0)  # a turn for the next chunk's fetch
            parts.append(csv_text(list(map(self._cells, rows[start : start + SLICE_ROWS]))))
        return "".join(parts)

    async def close(self) -> None:
        """End the cursor and give the connection back (its read-only transaction rolls
        back), whether the download finished, failed or was abandoned."""
        await self._chunks.aclose()
        pending, self._next_rows = self._next_rows, None
        try:
            if pending is not None:
                # One operation at a time on a connection: a fetch under way ends first. Its
                # rows, or its failure, no longer matter.
                with contextlib.suppress(Exception):
                    await pending
            await self._result.close()
        finally:
            await self._connection.close()


async def _next_partition(partitions: AsyncIterator[Sequence[Row]]) -> Sequence[Row]:
    """The next chunk of rows; none at the end. (Not `anext(partitions, ())`: on Python 3.11
    that fails with SystemError at the end of SQLAlchemy's partitions.)"""
    try:
        return await partitions.__anext__()
    except StopAsyncIteration:
        return ()


class CsvResponse(StreamingResponse):
    """The streamed file; its export is closed however the response ends (a client that goes
    away mid-download included), not left to the garbage collector."""

    def __init__(self, export: CsvExport, filename: str) -> None:
        super().__init__(
            export.chunks(), media_type=CSV_MEDIA_TYPE, headers=_download_headers(filename)
        )
        self.export = export

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.export.close()


def _download_headers(filename: str) -> dict[str, str]:
    return {
        "content-disposition": f'attachment; filename="{filename}"',
        # The rows are the caller's, and a link's token is in the URL: no cache keeps them.
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
    }


def _refusal(status: int, reason: str) -> Response:
    """A refused download: the status and a one-line reason, no file."""
    headers = {"www-authenticate": 'Bearer realm="pomreport"'} if status == 401 else None
    return PlainTextResponse(_one_line(reason), status_code=status, headers=headers)


def _failure(error: Exception) -> Response:
    """A download the service could not start: masked as on /graphql (503 when the database
    is out of reach or busy, else 500 with the request ID), one line."""
    message, extensions = masked_error(error)
    if extensions["code"] == "SERVICE_UNAVAILABLE":
        return PlainTextResponse(
            _one_line(message),
            status_code=503,
            headers={"retry-after": str(RETRY_AFTER_SECONDS)},
        )
    return PlainTextResponse(_one_line(message), status_code=500)


def _one_line(reason: str) -> str:
    return " ".join(reason.split()) + "\n"
