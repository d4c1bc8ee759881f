"""The console's web pages: server-rendered Jinja2 over the same queries as the API.

Every list is a GET with its filters in the query string, so a page's URL can be pasted
into a chat and opens the same view for a colleague (after their login).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, URLEncodedBody
from litestar.response import Redirect, Template

from gateway.console.api import (
    ReplayRequest,
    change_pause,
    console_of,
    destinations_view,
    event_filter,
    letter_filter,
    run_replay,
    sources_view,
    user_of,
)
from gateway.console.auth import COOKIE
from gateway.console.store import STATUSES, public


def when(at: float | None) -> str:
    """A unix time as `2026-12-07 01:02:03Z` (UTC: one clock for everyone on the call)."""
    if at is None:
        return "—"
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _context(request: Request[Any, Any, Any], **values: Any) -> dict[str, Any]:
    user = user_of(request)
    session = request.cookies.get(COOKIE)
    csrf = request.app.state.auth.csrf(user, session) if session else ""
    return {"user": user, "csrf": csrf, "when": when, "path": request.url.path, **values}


@get("/", include_in_schema=False)
async def home() -> Redirect:
    """The events list is the start page."""
    return Redirect("/events")


@get("/events", include_in_schema=False)
async def events_page(
    request: Request[Any, Any, Any],
    source: FromQuery[str | None] = None,
    provider: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    destination: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
    before: FromQuery[int | None] = None,
    limit: FromQuery[int] = 50,
) -> Template:
    """Recent requests, filterable, newest first."""
    console = console_of(request)
    raw = {
        "source": source,
        "provider": provider,
        "type": request.query_params.get("type"),
        "status": status,
        "destination": destination,
        "since": since,
        "until": until,
        "q": q,
    }
    f = event_filter(
        time.time(),
        source,
        provider,
        raw["type"],
        status,
        destination,
        since,
        until,
        q,
        before,
        limit,
    )
    items, cursor = console.store.events(f)
    kept = {k: v for k, v in raw.items() if v}
    next_url = f"/events?{urlencode({**kept, 'before': cursor})}" if cursor else None
    return Template(
        "events.html",
        context=_context(
            request,
            items=[public(i) for i in items],
            filters=raw,
            next_url=next_url,
            statuses=STATUSES,
            sources=sorted(console.config.sources),
            providers=sorted({s.provider for s in console.config.sources.values()}),
            destinations=sorted(console.config.destinations),
        ),
    )


@get("/events/{ref:str}", include_in_schema=False)
async def event_page(request: Request[Any, Any, Any], ref: FromPath[str]) -> Template:
    """One event: the CloudEvent, routes, records and each destination's timeline."""
    found = console_of(request).store.event(ref)
    if found is None:
        raise NotFoundException(f"no event {ref[:80]!r} in the console's store")
    webhooks = set(console_of(request).config.webhook_destinations())
    return Template("event.html", context=_context(request, item=found, webhooks=webhooks))


@get("/dead-letters", include_in_schema=False)
async def dead_letters_page(
    request: Request[Any, Any, Any],
    destination: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
    replayed: FromQuery[str | None] = None,
    done: FromQuery[int | None] = None,
) -> Template:
    """Dead letters with replay buttons (one, the ticked ones, every match)."""
    console = console_of(request)
    shown = {"no": False, "yes": True}.get(replayed or "no")
    f = letter_filter(time.time(), destination, since, until, q, shown)
    filters = {
        "destination": destination,
        "since": since,
        "until": until,
        "q": q,
        "replayed": replayed or "no",
    }
    return Template(
        "dead_letters.html",
        context=_context(
            request,
            items=console.store.dead_letters(f, with_body=False),
            filters=filters,
            destinations=sorted(console.config.webhook_destinations()),
            done=done,
        ),
    )


@post("/dead-letters/replay", include_in_schema=False, status_code=303)
async def replay_form(
    request: Request[Any, Any, Any],
    data: URLEncodedBody[dict[str, Any]],
) -> Redirect:
    """The dead-letter view's replay buttons (CSRF-checked by the app's auth hook)."""
    events = data.get("event")
    if isinstance(events, str):
        events = [events]
    if data.get("one"):  # a row's own button: that dead letter only
        events = [str(data["one"])]
    elif data.get("all"):  # every waiting one matching the filter, ticked or not
        events = None
    if not events and not data.get("all"):
        raise ClientException("tick at least one dead letter, or use “Replay all matching”")
    ask = ReplayRequest(
        events=list(events) if events else None,
        destination=data.get("destination") or None,
        since=data.get("since") or None,
        until=data.get("until") or None,
        all=bool(data.get("all")),
    )
    result = await run_replay(request, ask)
    back = {k: data[k] for k in ("destination", "since", "until") if data.get(k)}
    return Redirect(f"/dead-letters?{urlencode({**back, 'done': result['replayed']})}")


@get("/destinations", include_in_schema=False)
async def destinations_page(
    request: Request[Any, Any, Any],
    done: FromQuery[str | None] = None,
    name: FromQuery[str | None] = None,
) -> Template:
    """Each destination's health (the journal) and pause state (the control topic)."""
    items = await destinations_view(console_of(request), time.time())
    known = {d["name"] for d in items}
    changed = (done, name) if done in ("paused", "resumed") and name in known else None
    return Template("destinations.html", context=_context(request, items=items, done=changed))


@post("/destinations/{name:str}/pause", include_in_schema=False, status_code=303)
async def pause_form(request: Request[Any, Any, Any], name: FromPath[str]) -> Redirect:
    """The Destinations view's Pause button (CSRF-checked by the app's auth hook)."""
    await change_pause(request, name, True)
    return Redirect(f"/destinations?{urlencode({'done': 'paused', 'name': name})}", status_code=303)


@post("/destinations/{name:str}/resume", include_in_schema=False, status_code=303)
async def resume_form(request: Request[Any, Any, Any], name: FromPath[str]) -> Redirect:
    """The Destinations view's Resume button (CSRF-checked by the app's auth hook)."""
    await change_pause(request, name, False)
    return Redirect(
        f"/destinations?{urlencode({'done': 'resumed', 'name': name})}", status_code=303
    )


@get("/sources", include_in_schema=False)
async def sources_page(request: Request[Any, Any, Any]) -> Template:
    """Each source's counts and latest rejections."""
    items = sources_view(console_of(request), time.time())
    return Template("sources.html", context=_context(request, items=items))


def login_page(next_url: str, error: str | None, status: int) -> Response[Any]:
    """The login form (401 when shown in place of a page that needs a login)."""
    return Template("login.html", context={"next": next_url, "error": error}, status_code=status)


def error_page(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """An error as a page, for browser paths."""
    return Template(
        "error.html",
        context={"status": exc.status_code, "detail": exc.detail, "path": request.url.path},
        status_code=exc.status_code,
    )


ROUTES = [home, events_page, event_page, dead_letters_page, replay_form, destinations_page,
          pause_form, resume_form, sources_page]  # fmt: skip
