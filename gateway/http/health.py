"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get


@get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    """Alive while the process can serve."""
    return {"status": "ok"}


@get("/readyz", summary="Config loaded and broker reachable (or a spool with room)")
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Ready once the config is loaded and the Kafka producer is connected.

    With a spool, a broker outage does not make the pod unready while the spool has room
    (taking webhooks into it is what it is for; the outage shows in `kafka` here, in
    `gateway_kafka_connected` and in the logs); a full spool does. A `gateway worker`
    process is ready only once its consumer reads the delivery queue too; the ingress does
    not wait for its in-process workers (deliveries wait on Kafka).
    """
    state = request.app.state
    connected = bool(state.producer.ready)
    workers = state.get("workers")
    consuming = workers is not None and bool(workers.ready)
    spool = state.get("spool")
    room = spool is not None and not spool.full
    ready = (connected or room) and (consuming or not state.get("workers_required", False))
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "kafka": "connected" if connected else "disconnected",
    }
    if spool is not None:
        body["spool"] = {
            "depth": spool.depth,
            "bytes": spool.bytes,
            "max_bytes": spool.max_bytes,
            "full": not room,
        }
    if workers is not None:
        body["workers"] = "consuming" if consuming else "not consuming"
    return Response(body, status_code=200 if ready else 503)


@get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics_page() -> Response[bytes]:
    """Prometheus text format."""
    from gateway.metrics import render

    body, content_type = render()
    return Response(body, media_type=content_type)
