"""`create_app(config)`: the Litestar application, with no import-time side effects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.types import (
    HTTPScope,
    LifeSpanReceive,
    LifeSpanScope,
    LifeSpanSend,
    Receive,
    Scope,
    Send,
)

from gateway import __version__, metrics, tracing
from gateway.config import Config
from gateway.destinations.kafka import Producer
from gateway.fastpaths import fast
from gateway.http.health import healthz, metrics_page, readyz
from gateway.http.ingress import Ingress, source_of, webhooks_route
from gateway.http.openapi import OpenAPIDocument
from gateway.http.problems import http_exception_handler, internal_error_handler
from gateway.journal import Journal
from gateway.pipeline import Pipeline
from gateway.spool import Drainer, Enqueue, Header, Spool


def create_app(
    config: Config, producer: Producer | None = None, *, run_workers: bool = True
) -> Litestar:
    """The gateway's ASGI app; the producer connects in the lifespan (or is given, started)."""
    producer = producer or Producer(config)
    spool = (
        Spool(config.spool.path, config.spool.max_bytes, reserve=config.max_request_size())
        if config.spool
        else None
    )
    pipeline = Pipeline(config, producer, spool)
    journal = pipeline.journal = Journal(config) if config.kafka.journal_topic else None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        workers = None
        drainer = None
        tracing.setup(config.tracing)
        metrics.forget_dead_processes()
        await producer.start()
        if journal is not None:
            await journal.start()
        if spool is not None and config.spool is not None:
            # Every process runs one; the holder of the file's drain lock drains (a spool
            # left behind by a stopped process is forwarded by whoever opens it next).
            drainer = Drainer(
                spool,
                _enqueuer(producer),
                config.kafka.dead_letter_topic,
                config.spool.drain_interval,
                config.spool.drain_batch,
            )
            pipeline.handoff.on_spooled = drainer.wake
            drainer.start()
        if run_workers and config.webhook_destinations():
            from gateway.destinations.worker import DeliveryWorkers

            # One producer and one journal per process.
            workers = DeliveryWorkers(config, producer=producer, journal=journal)
            await workers.start()
        app.state.workers = workers
        try:
            yield
        finally:
            # Reverse order of start: workers hand back what they hold, then the producer flushes.
            if workers is not None:
                await workers.stop()
            if drainer is not None and config.spool is not None:
                await drainer.stop(grace=config.spool.shutdown_drain)
            if journal is not None:
                await journal.stop()
            await producer.stop()
            await pipeline.store.close()
            if spool is not None:
                spool.close()
            tracing.shutdown()
            metrics.process_exiting()

    app = GatewayApp(
        Ingress(pipeline),
        route_handlers=[webhooks_route, healthz, readyz, metrics_page],
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Webhook gateway", version=__version__, render_plugins=[OpenAPIDocument(config)]
        ),
        request_max_body_size=config.server.max_body_bytes + 1,
        **_ERRORS,
    )
    app.state.pipeline = pipeline
    app.state.producer = producer
    app.state.spool = spool
    app.state.config = config
    app.state.workers_required = False
    return app


def create_worker_app(config: Config) -> Litestar:
    """`gateway worker --port P`: delivery workers with /healthz, /readyz and /metrics."""
    from gateway.destinations.worker import DeliveryWorkers

    producer = Producer(config)
    workers = DeliveryWorkers(config, producer=producer)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        tracing.setup(config.tracing)
        await producer.start()
        await workers.start()
        try:
            yield
        finally:
            await workers.stop()
            await producer.stop()
            tracing.shutdown()

    app = Litestar(
        route_handlers=[healthz, readyz, metrics_page],
        lifespan=[lifespan],
        openapi_config=None,
        **_ERRORS,
    )
    app.state.producer = producer
    app.state.workers = workers
    app.state.workers_required = True
    app.state.config = config
    return app


# The gateway's error mapping for Litestar's own routes: problem details, never a traceback.
_ERRORS: dict[str, Any] = {
    "exception_handlers": {
        HTTPException: http_exception_handler,
        Exception: internal_error_handler,
    },
    "debug": False,
}


_BYPASS = fast("ingress")


class GatewayApp(Litestar):
    """Litestar, with `/webhooks/{source}` answered by the ingress before the router.

    The ingress is the one hot route; handing it the request directly skips Litestar's
    routing, middleware and connection objects. Every other path goes through Litestar as
    usual (including the ingress under a root path, through `webhooks_route`). Fast path
    `ingress` (gateway/fastpaths.py; off, every request takes `webhooks_route`), justified
    by benchmarks/ingest_bench.py --fast-paths.
    """

    def __init__(self, ingress: Ingress, **options: Any) -> None:
        super().__init__(**options)
        self.ingress = self.state.ingress = ingress

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        """Dispatch one ASGI connection."""
        if _BYPASS and scope["type"] == ScopeType.HTTP:
            http = cast("HTTPScope", scope)
            source = source_of(http["path"])
            if source is not None:
                await self.ingress(http, cast("Receive", receive), cast("Send", send), source)
                return
        await super().__call__(scope, receive, send)


def _enqueuer(producer: Producer) -> Enqueue:
    async def enqueue(
        topic: str, value: bytes, key: bytes | None, headers: list[Header]
    ) -> asyncio.Future[Any]:
        return await producer.enqueue(topic, value, key=key, headers=headers)

    return enqueue
