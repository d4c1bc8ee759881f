"""`create_app(config)`: the Litestar application, with no import-time side effects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

from gateway import __version__, tracing
from gateway.config import Config
from gateway.destinations.kafka import Producer
from gateway.http.health import healthz, metrics_page, readyz
from gateway.http.ingress import receive
from gateway.http.problems import http_exception_handler, internal_error_handler
from gateway.observability import REDACTOR, config_secret_values
from gateway.pipeline import Pipeline
from gateway.spool import Drainer, Header, Send, Spool


def create_app(
    config: Config, producer: Producer | None = None, *, run_workers: bool = True
) -> Litestar:
    """The gateway's ASGI app; the producer connects in the lifespan (or is given, started)."""
    producer = producer or Producer(config)
    REDACTOR.add(config_secret_values(config))
    spool = Spool(config.spool.path, config.spool.max_bytes) if config.spool else None
    pipeline = Pipeline(config, producer, spool)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        workers = None
        drainer = None
        tracing.setup(config.tracing)
        await producer.start()
        if spool is not None and config.spool is not None:
            drainer = Drainer(spool, _sender(producer), config.spool.drain_interval)
            pipeline.on_spooled = drainer.wake
            drainer.start()
        if run_workers and config.webhook_destinations():
            from gateway.destinations.worker import DeliveryWorkers

            workers = DeliveryWorkers(config, producer=producer)  # one producer per process
            await workers.start()
        app.state.workers = workers
        try:
            yield
        finally:
            # Reverse order of start: workers hand back what they hold, then the producer flushes.
            if workers is not None:
                await workers.stop()
            if drainer is not None:
                await drainer.stop()
            await producer.stop()
            if spool is not None:
                spool.close()
            tracing.shutdown()

    app = _litestar(
        [receive, healthz, readyz, metrics_page],
        lifespan,
        openapi_config=OpenAPIConfig(title="Webhook gateway", version=__version__),
        request_max_body_size=config.server.max_body_bytes + 1,
    )
    app.state.pipeline = pipeline
    app.state.producer = producer
    app.state.config = config
    app.state.workers_required = False
    return app


def create_worker_app(config: Config) -> Litestar:
    """`gateway worker --port P`: delivery workers with /healthz, /readyz and /metrics."""
    from gateway.destinations.worker import DeliveryWorkers

    REDACTOR.add(config_secret_values(config))
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

    app = _litestar([healthz, readyz, metrics_page], lifespan, openapi_config=None)
    app.state.producer = producer
    app.state.workers = workers
    app.state.workers_required = True
    app.state.config = config
    return app


def _litestar(handlers: list[Any], lifespan: Any, **options: Any) -> Litestar:
    """A Litestar app with the gateway's error mapping (problem details, never a traceback)."""
    return Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        exception_handlers={
            HTTPException: http_exception_handler,
            Exception: internal_error_handler,
        },
        debug=False,
        **options,
    )


def _sender(producer: Producer) -> Send:
    async def send(topic: str, value: bytes, key: bytes | None, headers: list[Header]) -> Any:
        return await producer.send(topic, value, key=key, headers=headers)

    return send
