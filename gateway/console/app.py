"""`gateway console`: the operator console's Litestar app, on its own port.

`create_console_app(config)` wires the store, the Kafka feed that fills it, the journal
(operator actions are journaled like everything else), authentication, the JSON API and the
pages. Authentication runs before every route except `/login`, `/healthz`, `/readyz` and
the static files: an API call without a valid token gets a 401 problem, a page gets the
login form (also 401, so the pasted URL is kept and opened after the login).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import structlog
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.params import QueryParameter, URLEncodedBody
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from gateway import __version__
from gateway.config import Config
from gateway.console import api, pages
from gateway.console.auth import COOKIE, Auth, now
from gateway.console.feed import Feed
from gateway.console.store import Store
from gateway.journal import Journal
from gateway.observability import config_secret_values

log = structlog.get_logger("gateway.console")

HERE = Path(__file__).parent
_OPEN = frozenset({"/login", "/healthz", "/readyz"})
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _problem(status: int, title: str, detail: str, **headers: str) -> Response[bytes]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(
        json.dumps(body).encode(),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    return (
        path.startswith("/api/")
        or path.startswith("/schema")
        or "authorization" in request.headers
        or "application/json" in request.headers.get("accept", "")
    )


def _next_of(request: Request[Any, Any, Any]) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _safe_next(value: str | None) -> str:
    """Only a path on this console (never `//host` or `/\\host`): no open redirect."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/events"
    return value


async def authenticate(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Before every route: who is calling, may they, and is a change CSRF-protected."""
    path = request.url.path
    if path in _OPEN or path.startswith("/static/"):
        return None
    auth: Auth = request.app.state.auth
    header = request.headers.get("authorization")
    session = None
    user = None
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            user = auth.by_token(token.strip())
    else:
        session = request.cookies.get(COOKIE)
        if session:
            user = auth.by_session(session, now())
    if user is None:
        if _wants_json(request):
            return _problem(
                401,
                "Unauthorized",
                "a valid console token is required (`Authorization: Bearer <token>`)",
                **{"WWW-Authenticate": 'Bearer realm="gateway-console"'},
            )
        return pages.login_page(_next_of(request), None, 401)
    request.scope["state"]["user"] = user
    if request.method in _SAFE:
        return None
    if user.role != "operator" and path != "/logout":
        return _problem(403, "Forbidden", f"`{user.name}` is a viewer: this needs `operator`")
    if session is not None:  # cookie-authenticated: the change must prove it came from our page
        supplied = request.headers.get("x-csrf-token")
        if supplied is None and "form" in request.headers.get("content-type", ""):
            value = (await request.form()).get("csrf")
            supplied = value if isinstance(value, str) else None
        if not auth.csrf_ok(user, session, supplied):
            return _problem(403, "Forbidden", "missing or wrong CSRF token: reload the page")
    return None


async def protect(response: Response[Any]) -> Response[Any]:
    """After every route: no framing (clickjacking), no caching, no referrer leaks.

    The pages also carry a Content-Security-Policy (`'self'` only) in a meta tag; a header
    would break Swagger UI, whose assets Litestar loads from a CDN.
    """
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@get("/login", include_in_schema=False)
async def login_form(
    next_: Annotated[str | None, QueryParameter(name="next")] = None,
) -> Response[Any]:
    """The login form."""
    return pages.login_page(_safe_next(next_), None, 200)


@post("/login", include_in_schema=False)
async def login(
    request: Request[Any, Any, Any],
    data: URLEncodedBody[dict[str, Any]],
) -> Response[Any]:
    """Check the token; set the session cookie. Failures are throttled and logged."""
    auth: Auth = request.app.state.auth
    client = request.client.host if request.client else "unknown"
    target = _safe_next(data.get("next"))
    wait = auth.throttled(client, now())
    if wait:
        log.warning("console_login_throttled", client=client, retry_in=round(wait))
        page = pages.login_page(target, "Too many failed logins: wait a minute.", 429)
        page.headers["Retry-After"] = str(int(wait) + 1)
        return page
    token = data.get("token")
    user = auth.by_token(token) if isinstance(token, str) and token else None
    if user is None:
        failures = auth.failed(client, now())
        log.warning("console_login_failed", client=client, failures=failures)
        return pages.login_page(target, "That token is not valid.", 401)
    log.info("console_login", user=user.name, role=user.role, client=client)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    cookie = Cookie(
        key=COOKIE,
        value=auth.session(user, now()),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
        max_age=int(request.app.state.console.config.console.session_ttl),
    )
    return Redirect(target, status_code=303, cookies=[cookie])


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    """End the session (the cookie is cleared)."""
    log.info("console_logout", user=api.user_of(request).name)
    response: Response[Any] = Redirect("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """Ready once the feed is connected to Kafka."""
    feed: Feed = request.app.state.feed
    if feed.connected:
        return Response({"status": "ready"})
    return Response({"status": "not ready", "detail": "not connected to Kafka"}, status_code=503)


def _on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if _wants_json(request) or "user" not in request.scope.get("state", {}):
        return _problem(exc.status_code, _TITLES.get(exc.status_code, "Error"), str(exc.detail))
    return pages.error_page(request, exc)


def _on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("console_unhandled_error", path=request.url.path, exc_info=exc)
    return _problem(500, "Internal Server Error", "the console failed; see its log")


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 429: "Too Many Requests"}  # fmt: skip


def create_console_app(config: Config) -> Litestar:
    """The console's ASGI app (needs `console:` and `kafka.journal_topic` in the config)."""
    settings = config.console
    if settings is None or config.kafka.journal_topic is None:
        raise ValueError("the console needs a `console:` section and `kafka.journal_topic`")
    store = Store(
        settings.store,
        omit=settings.omit,
        retention=settings.retention,
        max_rows=settings.max_rows,
        secrets=config_secret_values(config),
    )
    journal = Journal(config)
    feed = Feed(config, store)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await journal.start()
        await feed.start()
        try:
            yield
        finally:
            await feed.stop()
            await journal.stop()
            store.close()

    app = Litestar(
        route_handlers=[
            login_form,
            login,
            logout,
            healthz,
            readyz,
            *api.ROUTES,
            *pages.ROUTES,
            create_static_files_router("/static", [HERE / "static"], include_in_schema=False),
        ],
        before_request=authenticate,
        after_request=protect,
        lifespan=[lifespan],
        template_config=TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine),
        openapi_config=OpenAPIConfig(title="Webhook gateway console", version=__version__),
        exception_handlers={HTTPException: _on_http_error, Exception: _on_error},
        debug=False,
    )
    app.state.console = api.Console(config, store, journal)
    app.state.auth = Auth(settings)
    app.state.feed = feed
    return app


def serve(config: Config, listen: str | None) -> int:
    """Run the console under uvicorn until SIGTERM/SIGINT."""
    import uvicorn

    assert config.console is not None
    host, _, port = (listen or config.console.listen).rpartition(":")
    uvicorn.run(
        create_console_app(config),
        host=host.strip("[]"),
        port=int(port),
        loop="uvloop",
        access_log=False,
        log_level=config.server.log_level,
        timeout_graceful_shutdown=5,
    )
    return 0
