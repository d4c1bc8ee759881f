"""The console's JSON API under `/api` (in the OpenAPI document), and what the pages share.

Every handler reads the local store. The state-changing calls go through the CLI's own
paths and are journaled and logged with who did it: replay through
`gateway.destinations.replay.replay` (`gateway replay`), pause and resume through
`gateway.destinations.admin.set_paused` (`gateway destinations pause|resume`), whose state the
destinations listing reads back from the control topic.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import msgspec
import structlog
from aiokafka.errors import KafkaError
from litestar import Request, get, post
from litestar.exceptions import (
    ClientException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
)
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from gateway.config import Config, ConsoleUser
from gateway.console.store import STATUSES, EventFilter, LetterFilter, Store, public
from gateway.destinations import replay as replay_path
from gateway.destinations.admin import set_paused
from gateway.destinations.control import Pause, paused_destinations, read_control
from gateway.journal import Journal
from gateway.types import Duration

log = structlog.get_logger("gateway.console")

# How long a listing waits for the control topic before showing `paused: null` (unknown), and
# how long a pause/resume waits for the broker's acknowledgement before answering 503.
CONTROL_READ_TIMEOUT = 5.0
CONTROL_WRITE_TIMEOUT = 15.0
# A journaled console pause names who paused when it was journaled this soon after the
# control record's time (a later `gateway destinations pause` from the CLI names nobody).
PAUSED_BY_WINDOW = 60.0
PAUSES_TTL = 1.0


@dataclass
class Console:
    """What every console handler needs: config, store, journal (for operator actions)."""

    config: Config
    store: Store
    journal: Journal | None
    # The control topic's pause records as last read (monotonic time, None if unreadable):
    # listings within PAUSES_TTL share one read, so polling pages open no Kafka client each.
    pauses: tuple[float, dict[str, Pause] | None] | None = None
    pauses_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def console_of(request: Request[Any, Any, Any]) -> Console:
    """The console of the app serving `request`."""
    console: Console = request.app.state.console
    return console


def user_of(request: Request[Any, Any, Any]) -> ConsoleUser:
    """The authenticated user (set by the app's auth hook)."""
    user: ConsoleUser = request.scope["state"]["user"]
    return user


def parse_time(value: str | None, now: float, name: str) -> float | None:
    """`24h` (that long ago), unix seconds, or RFC 3339; a 400 naming the parameter if none."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return now - Duration.parse(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ClientException(
            f"`{name}` must be a duration ago (`24h`), unix seconds or RFC 3339 time, "
            f"got {text[:40]!r}"
        ) from None
    if parsed.tzinfo is None:
        raise ClientException(f"`{name}` needs a time zone (e.g. `Z`)")
    return parsed.timestamp()


def event_filter(
    now: float,
    source: str | None,
    provider: str | None,
    type: str | None,
    status: str | None,
    destination: str | None,
    since: str | None,
    until: str | None,
    q: str | None,
    before: int | None,
    limit: int,
) -> EventFilter:
    """An `EventFilter` from query parameters (400 on a bad one)."""
    if status and status not in STATUSES:
        raise ClientException(f"`status` must be one of: {', '.join(STATUSES)}")
    if not 1 <= limit <= 200:
        raise ClientException("`limit` must be between 1 and 200")
    for name, value in (("type", type), ("q", q)):
        if value is not None and len(value) > 200:
            raise ClientException(f"`{name}` is longer than 200 characters")
    return EventFilter(
        source=source or None,
        provider=provider or None,
        type=type or None,
        status=status or None,
        destination=destination or None,
        since=parse_time(since, now, "since"),
        until=parse_time(until, now, "until"),
        q=(q or "").strip() or None,
        before=before,
        limit=limit,
    )


def letter_filter(
    now: float,
    destination: str | None,
    since: str | None,
    until: str | None,
    q: str | None,
    replayed: bool | None,
    limit: int = 100,
) -> LetterFilter:
    """A `LetterFilter` from query parameters."""
    if not 1 <= limit <= 1000:
        raise ClientException("`limit` must be between 1 and 1000")
    return LetterFilter(
        destination=destination or None,
        since=parse_time(since, now, "since"),
        until=parse_time(until, now, "until"),
        q=(q or "").strip() or None,
        replayed=replayed,
        limit=limit,
    )


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What to replay: `events` (ids, optionally of one `destination`), or a filter."""

    events: list[str] | None = None
    destination: str | None = None
    since: str | None = None
    until: str | None = None
    all: bool = False  # with no `events`: every waiting dead letter matching the filter


async def run_replay(request: Request[Any, Any, Any], ask: ReplayRequest) -> dict[str, Any]:
    """Replay dead letters through `gateway replay`'s path; journaled and logged with who."""
    console = console_of(request)
    user = user_of(request)
    if user.role != "operator":
        raise PermissionDeniedException("replaying needs the `operator` role")
    hooks = console.config.webhook_destinations()
    if ask.destination is not None and ask.destination not in hooks:
        raise ClientException(f"no webhook destination named {ask.destination!r}")
    if ask.events is None and not ask.all:
        raise ClientException("name `events`, or set `all: true` to replay every match")
    if ask.events is not None and not 1 <= len(ask.events) <= 1000:
        raise ClientException("`events` must list between 1 and 1000 event ids")
    now = time.time()
    letters = console.store.dead_letters(
        letter_filter(now, ask.destination, ask.since, ask.until, None, False, limit=1000),
        with_body=False,
    )
    wanted = None if ask.events is None else set(ask.events)
    selection: dict[str, set[str]] = defaultdict(set)
    for letter in letters:
        if letter["destination"] in hooks and (wanted is None or letter["event_id"] in wanted):
            selection[letter["destination"]].add(letter["event_id"])
    replayed = 0
    for destination, ids in sorted(selection.items()):
        result = await replay_path.replay(console.config, destination, None, now, events=ids)
        replayed += len(result)
    chosen = {d: sorted(ids) for d, ids in selection.items()}
    console.store.mark_replayed(user.name, {d: list(ids) for d, ids in chosen.items()}, None)
    if console.journal is not None:
        console.journal.action(user.name, "replay", selection=chosen, count=replayed)
    log.info(
        "console_action",
        user=user.name,
        action="replay",
        destinations=sorted(chosen),
        events=sum(len(v) for v in chosen.values()),
        replayed=replayed,
    )
    answer: dict[str, Any] = {"replayed": replayed, "selection": chosen}
    if wanted is not None:
        # Asked for by id but not waiting here: already replayed, never dead-lettered, or not yet
        # read from the journal by this console (each console follows the topic on its own).
        answer["unknown"] = sorted(wanted - {i for ids in selection.values() for i in ids})
    return answer


async def control_pauses(console: Console, fresh: bool = False) -> dict[str, Pause] | None:
    """Every destination's pause record on the control topic; None if it cannot be read.

    One read at a time per console process, shared by the listings of the next PAUSES_TTL
    seconds (an unreadable topic too: an outage does not queue a wait per page view).
    """
    async with console.pauses_lock:
        cached = console.pauses
        if not fresh and cached is not None and time.monotonic() - cached[0] < PAUSES_TTL:
            return cached[1]
        pauses: dict[str, Pause] | None
        try:
            state = await asyncio.wait_for(
                read_control(console.config.kafka, b"pause/"), CONTROL_READ_TIMEOUT
            )
            pauses = paused_destinations(state)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("console_control_read_failed", error=type(exc).__name__)
            pauses = None
        console.pauses = (time.monotonic(), pauses)
        return pauses


def _paused_by(console: Console, name: str, pause: Pause) -> str | None:
    """Who paused: the console pause of `name` journaled just after the control record."""
    for action in console.store.actions(200, names=("pause", "resume")):
        if action["detail"].get("destination") != name or action["detail"].get("changed") is False:
            continue
        after = action["at"] - pause.at
        if after > PAUSED_BY_WINDOW:
            continue  # newer than this record (a pause journaled by a failing replica?)
        if action["action"] == "pause" and after >= 0:
            user: str | None = action["user"]
            return user
        return None  # the record was written elsewhere (the CLI) after the console's last
    return None


async def destinations_view(console: Console, now: float) -> list[dict[str, Any]]:
    """Every configured destination with what the journal and the control topic say."""
    pauses = await control_pauses(console)
    out = []
    for name, dest in sorted(console.config.destinations.items()):
        if dest.webhook is not None:
            pause = None if pauses is None else pauses.get(name)
            paused = pause is not None and pause.paused
            out.append(
                {
                    "name": name,
                    "kind": "webhook",
                    "url": dest.webhook.url,
                    # null only when the control topic could not be read (state unknown)
                    "paused": None if pauses is None else paused,
                    "paused_since": pause.at if pause is not None and paused else None,
                    "paused_by": (
                        _paused_by(console, name, pause) if pause is not None and paused else None
                    ),
                    **console.store.destination_stats(name, now),
                }
            )
        elif dest.kafka is not None:
            out.append(
                {
                    "name": name,
                    "kind": "kafka",
                    "topic": dest.kafka.topic,
                    "records": console.store.records_count(name, now),
                }
            )
    return out


async def change_pause(request: Request[Any, Any, Any], name: str, paused: bool) -> dict[str, Any]:
    """Pause or resume a webhook destination fleet-wide (`gateway destinations pause|resume`)."""
    console = console_of(request)
    user = user_of(request)
    action = "pause" if paused else "resume"
    if user.role != "operator":
        raise PermissionDeniedException(f"{action} needs the `operator` role")
    if name not in console.config.webhook_destinations():
        if name in console.config.destinations:
            raise ClientException(
                f"{name!r} is a Kafka destination: only webhook destinations pause"
            )
        raise NotFoundException(f"no webhook destination named {name[:80]!r}")
    pauses = await control_pauses(console, fresh=True)
    current = None if pauses is None else pauses.get(name)
    if pauses is not None and (current is not None and current.paused) == paused:
        # Already so: nothing written, so a second Pause keeps the first one's `paused_since`.
        if console.journal is not None:
            console.journal.action(user.name, action, destination=name, changed=False)
        log.info("console_action", user=user.name, action=action, destination=name, changed=False)
        return {"name": name, "paused": paused, "changed": False}
    try:
        await asyncio.wait_for(set_paused(console.config, name, paused), CONTROL_WRITE_TIMEOUT)
    except (KafkaError, OSError, TimeoutError) as exc:
        console.pauses = None  # it may have landed after all: the next listing reads it
        log.warning("console_action_failed", user=user.name, action=action, destination=name,
                    error=type(exc).__name__)  # fmt: skip
        raise ServiceUnavailableException(
            f"the control topic did not acknowledge the {action} of {name!r} "
            f"({type(exc).__name__}): check `gateway destinations list` and try again"
        ) from None
    console.pauses = None  # the next listing reads the new state back
    if console.journal is not None:
        console.journal.action(user.name, action, destination=name, changed=True)
    log.info("console_action", user=user.name, action=action, destination=name, changed=True)
    return {"name": name, "paused": paused, "changed": True}


def sources_view(console: Console, now: float) -> list[dict[str, Any]]:
    """Every configured source with its counts and latest rejections."""
    return [
        {"name": name, "provider": source.provider, **console.store.source_stats(name, now)}
        for name, source in sorted(console.config.sources.items())
    ]


# -- routes ------------------------------------------------------------------------------------


@get("/api/me", summary="The authenticated user")
async def api_me(request: Request[Any, Any, Any]) -> dict[str, str]:
    """Who the token or session belongs to, and the role."""
    user = user_of(request)
    return {"name": user.name, "role": user.role}


@get("/api/events", summary="List and filter events (accepted and rejected requests)")
async def api_events(
    request: Request[Any, Any, Any],
    source: FromQuery[str | None] = None,
    provider: FromQuery[str | None] = None,
    type_: Annotated[str | None, QueryParameter(name="type", description="glob: order.*")] = None,
    status: Annotated[str | None, QueryParameter(description="|".join(STATUSES))] = None,
    destination: FromQuery[str | None] = None,
    since: Annotated[
        str | None, QueryParameter(description="24h, unix seconds or RFC 3339")
    ] = None,
    until: FromQuery[str | None] = None,
    q: Annotated[str | None, QueryParameter(description="event id, subject or request id")] = None,
    before: Annotated[int | None, QueryParameter(description="paging cursor (`next`)")] = None,
    limit: FromQuery[int] = 50,
) -> dict[str, Any]:
    """Newest first; `next` is the `before` of the following page (null on the last)."""
    f = event_filter(
        time.time(), source, provider, type_, status, destination, since, until, q, before, limit
    )
    items, cursor = console_of(request).store.events(f)
    return {"items": [public(i) for i in items], "next": cursor}


@get("/api/events/{ref:str}", summary="One event with its routes, records and deliveries")
async def api_event(request: Request[Any, Any, Any], ref: FromPath[str]) -> dict[str, Any]:
    """By event id, or `r<row>` for a rejected request (which has no id)."""
    found = console_of(request).store.event(ref)
    if found is None:
        raise NotFoundException(f"no event {ref[:80]!r} in the console's store")
    return found


@get("/api/dead-letters", summary="List and filter dead letters")
async def api_dead_letters(
    request: Request[Any, Any, Any],
    destination: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    q: Annotated[str | None, QueryParameter(description="event id")] = None,
    replayed: FromQuery[bool | None] = None,
    limit: FromQuery[int] = 100,
) -> dict[str, Any]:
    """Newest first, with the (cleaned) body each would deliver."""
    f = letter_filter(time.time(), destination, since, until, q, replayed, limit)
    return {"items": console_of(request).store.dead_letters(f)}


@post("/api/dead-letters/replay", summary="Replay dead letters (operator)", status_code=200)
async def api_replay(
    request: Request[Any, Any, Any], data: JSONBody[ReplayRequest]
) -> dict[str, Any]:
    """One, a selection (`events`), or every waiting one matching a filter (`all: true`)."""
    return await run_replay(request, data)


@get("/api/destinations", summary="Destinations: paused, success rate, latency, lag, circuit")
async def api_destinations(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """`paused` (with `paused_since`, `paused_by`) from the control topic; null if unreadable."""
    return {"items": await destinations_view(console_of(request), time.time())}


@post(
    "/api/destinations/{name:str}/pause",
    summary="Pause a webhook destination, fleet-wide (operator)",
    status_code=200,
)
async def api_pause(request: Request[Any, Any, Any], name: FromPath[str]) -> dict[str, Any]:
    """Every worker stops sending to it within about a second; its events wait, none expire."""
    return await change_pause(request, name, True)


@post(
    "/api/destinations/{name:str}/resume",
    summary="Resume a paused webhook destination, fleet-wide (operator)",
    status_code=200,
)
async def api_resume(request: Request[Any, Any, Any], name: FromPath[str]) -> dict[str, Any]:
    """Every worker delivers what waited, in order where the destination is ordered."""
    return await change_pause(request, name, False)


@get("/api/sources", summary="Sources: accepted/rejected counts over 1 h and 24 h")
async def api_sources(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """With the latest rejections of each source (reason and detail, never a body)."""
    return {"items": sources_view(console_of(request), time.time())}


@get("/api/actions", summary="The latest operator actions (who replayed what)")
async def api_actions(
    request: Request[Any, Any, Any], limit: FromQuery[int] = 50
) -> dict[str, Any]:
    """From the journal, so every replica lists every replica's actions."""
    if not 1 <= limit <= 500:
        raise ClientException("`limit` must be between 1 and 500")
    return {"items": console_of(request).store.actions(limit)}


ROUTES = [
    api_me,
    api_events,
    api_event,
    api_dead_letters,
    api_replay,
    api_destinations,
    api_pause,
    api_resume,
    api_sources,
    api_actions,
]
