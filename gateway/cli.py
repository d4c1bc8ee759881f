"""`gateway` command line: serve | worker | check | explain | sign | replay | schema | asyncapi | dev | console."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from gateway.cli_support import load_or_exit as _load
from gateway.cli_support import signed_curl
from gateway.config import Config, settings_summary
from gateway.errors import GatewayError
from gateway.event import CloudEvent
from gateway.types import ascii_int


def app_factory() -> Any:
    """uvicorn factory (`--workers N` needs an import string): config from GATEWAY_CONFIG."""
    from gateway.app import create_app
    from gateway.observability import config_secret_values, configure_logging

    config = _load(os.environ.get("GATEWAY_CONFIG"))
    configure_logging(
        config.server.log_level,
        config.server.log_format,
        final=True,
        secrets=config_secret_values(config),
    )
    log_state(config, _count("GATEWAY_WORKERS"), _count("GATEWAY_REPLICAS"))
    app = create_app(config, run_workers=os.environ.get("GATEWAY_RUN_WORKERS", "1") != "0")
    tune_gc()
    return app


def _count(variable: str) -> int:
    """A process or replica count from the environment (1 when unset or not a number)."""
    count = ascii_int(os.environ.get(variable, "1"), 5)
    return 1 if count is None else count


def log_state(config: Config, workers: int, replicas: int = 1) -> None:
    """The start-up line saying where dedupe and replay state lives (and if it is per process).

    `workers` comes from `gateway serve --workers`; `replicas` from GATEWAY_REPLICAS (the
    chart sets it), since no process can see how many pods run its config.
    """
    import structlog

    from gateway.state import describe, per_process_warning

    log = structlog.get_logger("gateway.state")
    log.info("state_store", **describe(config.state))
    warning = per_process_warning(config.state, workers, replicas)
    if warning is not None:
        log.warning("state_per_process", detail=warning)


def tune_gc() -> None:
    """Keep the cyclic GC off the request path of a long-running server process.

    Everything built so far (modules, config, app) lives as long as the process: freeze it
    out of every future scan. Each request allocates hundreds of short-lived containers, so
    the default young-generation threshold (700) ran a collection every few requests; 10,000
    amortizes that. Fast path `gc` (gateway/fastpaths.py; off, the interpreter's defaults),
    justified by benchmarks/ingest_bench.py --fast-paths.
    """
    import gc

    from gateway.fastpaths import fast

    if not fast("gc"):
        return

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP ingress (plus delivery workers) under uvicorn."""
    import uvicorn

    config = _load(args.config)  # fail fast, before forking workers
    os.environ["GATEWAY_CONFIG"] = config.path
    os.environ["GATEWAY_RUN_WORKERS"] = "0" if args.no_workers else "1"
    os.environ["GATEWAY_WORKERS"] = str(args.workers)
    os.environ["GATEWAY_REQUEST_READ_TIMEOUT"] = str(float(config.server.request_read_timeout))
    os.environ["GATEWAY_MAX_HEADER_BYTES"] = str(config.server.max_header_bytes)
    os.environ["GATEWAY_MAX_HEADER_FIELD_BYTES"] = str(config.server.max_header_field_bytes)
    os.environ["GATEWAY_MAX_HEADERS"] = str(config.server.max_headers)
    from gateway.http.server import GuardedHttpToolsProtocol

    uvicorn.run(
        "gateway.cli:app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,
        ws="none",  # no WebSocket endpoint; an Upgrade is an ordinary (404/405) request
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For is the gateway's call (server.trusted_proxies)
        log_level=config.server.log_level,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=int(config.server.handoff_timeout) + 5,
    )
    return 0


def run_workers(config: Config, *, consumer_options: dict[str, Any] | None = None) -> int:
    """`gateway worker`: run delivery workers until SIGTERM/SIGINT; 1 if they stop on their own."""
    import asyncio

    import uvloop

    tune_gc()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve_workers(config, consumer_options))


async def _serve_workers(config: Config, consumer_options: dict[str, Any] | None) -> int:
    import asyncio
    import signal

    import structlog

    from gateway.destinations.worker import DeliveryWorkers

    workers = DeliveryWorkers(config, consumer_options=consumer_options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await workers.start()
    runner = workers.consumer_task
    assert runner is not None
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stopping, runner}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    crashed = runner in done
    if crashed and not runner.cancelled() and runner.exception() is not None:
        structlog.get_logger("gateway.delivery").error(
            "delivery_workers_crashed", error=repr(runner.exception())
        )
    await workers.stop()
    return 1 if crashed else 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run delivery workers only (scale them separately from the ingress)."""
    from gateway.observability import config_secret_values, configure_logging

    config = _load(args.config)
    if args.port is None:
        from gateway import tracing

        configure_logging(
            config.server.log_level, config.server.log_format, secrets=config_secret_values(config)
        )
        tracing.setup(config.tracing)
        try:
            return run_workers(config)
        finally:
            tracing.shutdown()
    import uvicorn

    os.environ["GATEWAY_CONFIG"] = config.path
    uvicorn.run(
        "gateway.cli:worker_app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For is the gateway's call (server.trusted_proxies)
        log_level=config.server.log_level,
        timeout_graceful_shutdown=5,  # HTTP here is probes and scrapes; workers drain after
    )
    return 0


def worker_app_factory() -> Any:
    """uvicorn factory for `gateway worker --port`: config from GATEWAY_CONFIG."""
    from gateway.app import create_worker_app
    from gateway.observability import config_secret_values, configure_logging

    config = _load(os.environ.get("GATEWAY_CONFIG"))
    configure_logging(
        config.server.log_level, config.server.log_format, secrets=config_secret_values(config)
    )
    return create_worker_app(config)


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-drive dead-lettered deliveries (or, with --dry-run, list what would be)."""
    import asyncio

    from gateway.destinations.replay import replay
    from gateway.types import Duration

    config = _load(args.config)
    if args.destination and args.destination not in config.webhook_destinations():
        raise SystemExit(f"no webhook destination named {args.destination!r}")
    try:
        since = Duration.parse(args.since) if args.since else None
    except ValueError as exc:
        raise SystemExit(f"--since: {exc}") from None
    try:
        result = asyncio.run(
            replay(
                config,
                args.destination,
                since,
                time.time(),
                event_id=args.event,
                dry_run=args.dry_run,
            )
        )
    except TimeoutError as exc:
        raise SystemExit(f"replay: {exc}") from None
    for item in result.redriven if args.dry_run else ():
        failed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item.failed_at))
        print(
            f"{item.destination}\t{item.event_id}\tfailed {failed}\t"
            f"attempts {item.attempts}\t{item.last_error}"
        )
    count = len(result)
    noun = f"dead-lettered deliver{'y' if count == 1 else 'ies'}"
    print(f"{'would re-queue' if args.dry_run else 're-queued'} {count} {noun}", end="")
    extra = []
    if result.left:
        extra.append(f"{result.left} left for a later run (filtered out)")
    if result.already:
        extra.append(f"{result.already} re-driven before")
    print(f" ({'; '.join(extra)})" if extra else "")
    return 0


def cmd_destinations(args: argparse.Namespace) -> int:
    """`destinations list|pause|resume`: webhook destinations' state, fleet-wide."""
    import asyncio

    from gateway.destinations.admin import list_destinations, set_paused

    config = _load(args.config)
    if args.action == "list":
        for line in asyncio.run(list_destinations(config)):
            print(line)
        return 0
    if not args.name:
        raise SystemExit(f"destinations {args.action}: a destination NAME is required")
    if args.name not in config.webhook_destinations():
        raise SystemExit(f"no webhook destination named {args.name!r}")
    asyncio.run(set_paused(config, args.name, args.action == "pause"))
    print(f"{args.name}: {'paused' if args.action == 'pause' else 'resumed'} (fleet-wide)")
    return 0


def cmd_spool_drain(args: argparse.Namespace) -> int:
    """Forward a left-behind spool file to the broker by hand (exit 1 if anything is left)."""
    import asyncio

    from gateway.observability import config_secret_values, configure_logging
    from gateway.spool import SpoolBusy, drain_file

    config = _load(args.config)
    configure_logging(
        config.server.log_level, config.server.log_format, secrets=config_secret_values(config)
    )
    try:
        result, left = asyncio.run(drain_file(config, args.path, args.timeout))
    except (FileNotFoundError, SpoolBusy) as exc:
        print(f"spool drain: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.path}: forwarded {result.forwarded} event(s), dead-lettered "
        f"{result.dead_lettered} record(s), {left} event(s) left"
    )
    return 0 if left == 0 else 1


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the config; print a summary, or every problem and exit 1."""
    config = _load(args.config)
    summary = settings_summary(config)
    print(f"{config.path}: OK")
    print(f"sources ({len(summary['sources'])}):")
    for name, provider in summary["sources"].items():
        print(f"  {name:<20} provider={provider:<9} POST /webhooks/{name}")
    print(f"destinations ({len(summary['destinations'])}):")
    for name, what in summary["destinations"].items():
        transform = config.destinations[name].transform
        print(f"  {name:<20} {what}" + (f", transform {transform!r}" if transform else ""))
    print(f"routes ({len(config.router.routes)}):")
    for route in config.router.routes:
        print(f"  {route.name:<40} -> {', '.join(route.to)}")
    if summary["unmatched"]:
        print(f"unmatched -> {', '.join(summary['unmatched'])}")
    from gateway.state import describe, per_process_warning

    state = describe(config.state)
    print("state: " + " ".join(f"{k}={v}" for k, v in state.items()))
    warning = per_process_warning(config.state, args.workers, args.replicas)
    if warning is not None:
        print(f"WARNING: {warning}")
    return 0


def _headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep:
            raise SystemExit(f"-H expects 'Name: value', got {item!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


def cmd_explain(args: argparse.Namespace) -> int:
    """Verify, decode, normalize and route one request (or one event) without sending."""
    from gateway.event import encode, to_builtins
    from gateway.pipeline import Pipeline
    from routing import format_explanation

    config = _load(args.config)
    pipeline = Pipeline(config, sender=_NoSender())
    now = args.now or time.time()
    built: CloudEvent | None = None
    if args.event:
        try:
            text = Path(args.event).read_bytes()
            partial: dict[str, Any] = json.loads(text)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--event: not a JSON event: {exc}") from None
        try:
            built = msgspec.json.Decoder(CloudEvent, float_hook=Decimal).decode(text)
        except msgspec.DecodeError as exc:
            # Routing alone needs only the paths its routes read: explain that much.
            print(f"(not a complete CloudEvent, {exc}: destination bodies are not shown)")
    else:
        if not args.source or not args.body:
            raise SystemExit("explain needs --source and --body (or --event)")
        raw = Path(args.body).read_bytes()
        try:
            pipeline.source(args.source)
            built = pipeline.event(args.source, raw, _headers(args.header), now)
        except GatewayError as exc:
            from gateway.http.problems import status_of

            print(f"rejected: HTTP {status_of(exc)} ({exc.reason}): {exc}", file=sys.stderr)
            return 1
    event = partial if built is None else to_builtins(built)
    print(json.dumps(json.loads(encode(event)), indent=2))
    print()
    traces = config.router.explain(event)
    print(format_explanation(traces, config.router.route(event)))
    if built is not None:
        for name, record in pipeline.preview(built, now):
            print()
            print(_describe_record(config, name, record, built.id, int(now)))
    return 0


def _describe_record(config: Config, name: str, record: Any, event_id: str, timestamp: int) -> str:
    """What one destination would receive: the exact body, and its key or HTTP headers."""
    from gateway.destinations.tasks import TASK_DECODER
    from gateway.destinations.webhook import request_headers

    dest = config.destinations[name]
    lines: list[str] = []
    shaped = f", transform {dest.transform!r}" if dest.transform else ""
    if dest.kafka is not None:
        lines.append(f"destination {name}: kafka topic {record.topic} ({dest.kafka.mode}{shaped})")
        key = "null" if record.key is None else record.key.decode("utf-8", "replace")
        lines.append(f"  key: {key}")
        for header, value in record.headers:
            lines.append(f"  header {header}: {value.decode('utf-8', 'replace')}")
        body: bytes = record.value
    else:
        assert dest.webhook is not None
        lines.append(f"destination {name}: webhook POST {dest.webhook.url}{shaped}")
        body = bytes(TASK_DECODER.decode(record.value).body)
        headers = request_headers(dest.webhook.headers, (), event_id, timestamp, body)
        for header, value in headers.items():
            if header != "webhook-signature":
                lines.append(f"  header {header}: {value}")
        lines.append("  header webhook-signature: (computed with the destination's secrets)")
    lines.append(f"  body ({len(body)} bytes, exactly as sent):")
    lines.append(f"  {body.decode('utf-8', 'replace')}")
    return "\n".join(lines)


class _NoSender:
    async def send(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("explain never sends")


def cmd_sign(args: argparse.Namespace) -> int:
    """Print a correctly signed curl line for local testing."""
    from gateway.providers import Provider, registry

    providers = registry()
    provider: str | Provider
    if args.source:  # the scheme of a configured source (required for `provider: hmac`)
        config = _load(args.config)
        source = config.sources.get(args.source)
        if source is None:
            raise SystemExit(f"no source named {args.source!r} in {config.path}")
        if args.provider and args.provider != source.provider:
            raise SystemExit(f"source {args.source!r} uses provider {source.provider!r}")
        provider = providers[source.provider].for_source(source.settings)
        path = args.source
    elif args.provider in providers:
        provider, path = args.provider, args.provider
    else:
        raise SystemExit(f"unknown provider {args.provider!r}; one of: {', '.join(providers)}")
    key_path = Path(args.key)
    # As `${file:}` reads it in the config: without the trailing newline.
    key = key_path.read_text().rstrip("\r\n") if key_path.is_file() else args.key
    url = args.url or f"http://127.0.0.1:8000/webhooks/{path}"
    try:
        print(signed_curl(provider, key, Path(args.body).read_bytes(), url, args.partner_id))
    except ValueError as exc:
        raise SystemExit(f"cannot sign: {exc}") from None
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the config file."""
    from gateway.schema import config_schema

    print(json.dumps(config_schema(), indent=2))
    return 0


def cmd_asyncapi(args: argparse.Namespace) -> int:
    """Print the AsyncAPI 3.0 document of every Kafka destination."""
    from gateway.asyncapi import document

    config = _load(args.config)
    print(json.dumps(document(config), indent=2))
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Start a local broker and the gateway with config/dev.yaml; print signed curl examples."""
    from gateway.dev import run_dev

    return run_dev(args)


def cmd_console(args: argparse.Namespace) -> int:
    """Serve the operator console (its own port; fed by the journal topic)."""
    from gateway.console.app import serve as console_serve
    from gateway.observability import config_secret_values, configure_logging

    config = _load(args.config)
    if config.console is None or config.kafka.journal_topic is None:
        print(
            f"{config.path}: the console needs a `console:` section (with `users`) and "
            "`kafka.journal_topic`",
            file=sys.stderr,
        )
        return 1
    if not config.console.users:
        print(f"{config.path}: `console.users` is empty: nobody could log in", file=sys.stderr)
        return 1
    configure_logging(
        config.server.log_level,
        config.server.log_format,
        final=True,
        secrets=config_secret_values(config),
    )
    return console_serve(config, args.listen)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="HTTP ingress plus delivery workers")
    serve.add_argument("--config")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server in a pod listens on all interfaces
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--no-workers",
        action="store_true",
        help="ingress only: leave webhook deliveries to `gateway worker` processes",
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="delivery workers only")
    worker.add_argument("--config")
    worker.add_argument(
        "--port", type=int, help="also serve /healthz, /readyz and /metrics on this port"
    )
    worker.add_argument("--host", default="0.0.0.0")  # noqa: S104 - pods listen on all interfaces
    worker.set_defaults(func=cmd_worker)

    replay = sub.add_parser("replay", help="re-drive dead-lettered deliveries")
    replay.add_argument("--config")
    replay.add_argument("--destination")
    replay.add_argument("--since", help="only dead letters newer than this (e.g. 24h)")
    replay.add_argument("--event", help="only the dead letters of this event id")
    replay.add_argument("--dry-run", action="store_true", help="list, re-drive nothing")
    replay.set_defaults(func=cmd_replay)

    dests = sub.add_parser("destinations", help="list, pause or resume webhook destinations")
    dests.add_argument("action", choices=["list", "pause", "resume"])
    dests.add_argument("name", nargs="?")
    dests.add_argument("--config")
    dests.set_defaults(func=cmd_destinations)

    spool = sub.add_parser("spool", help="the local spool").add_subparsers(
        dest="spool_command", required=True
    )
    drain = spool.add_parser("drain", help="forward a spool file (left by a stopped pod) by hand")
    drain.add_argument("--path", required=True, help="the spool file (spool.path of that pod)")
    drain.add_argument("--config", help="for the Kafka connection (default: GATEWAY_CONFIG)")
    drain.add_argument("--timeout", type=float, default=300.0, help="give up after (seconds)")
    drain.set_defaults(func=cmd_spool_drain)

    check = sub.add_parser("check", help="validate config and print a summary")
    check.add_argument("--config")
    check.add_argument(
        "--workers", type=int, default=1, help="worker processes per pod it will run with"
    )
    check.add_argument("--replicas", type=int, default=1, help="pods it will run as")
    check.set_defaults(func=cmd_check)

    explain = sub.add_parser(
        "explain", help="show what one request would become and where it would go"
    )
    explain.add_argument("--config")
    explain.add_argument("--source")
    explain.add_argument("--body")
    explain.add_argument(
        "--event", help="explain routing of an already-normalized event (JSON file)"
    )
    explain.add_argument("-H", "--header", action="append", default=[])
    explain.add_argument("--now", type=float, help="unix time to verify timestamps against")
    explain.set_defaults(func=cmd_explain)

    sign = sub.add_parser("sign", help="print a signed curl line")
    sign.add_argument(
        "--provider",
        help="fatpay | velafi | pay3 | whitepay | w3block | standard-webhooks | github | "
        "shopify | stripe | hmac (hmac needs --source)",
    )
    sign.add_argument("--source", help="sign as this configured source (its scheme and path)")
    sign.add_argument("--config", help="config file for --source (default: GATEWAY_CONFIG)")
    sign.add_argument(
        "--key", required=True, help="private key file (RSA providers) or secret (file or literal)"
    )
    sign.add_argument("--body", required=True)
    sign.add_argument(
        "--url",
        help="webhook URL (FaTPay signs it); default http://127.0.0.1:8000/webhooks/PROVIDER",
    )
    sign.add_argument("--partner-id", help="FaTPay partner id")
    sign.set_defaults(func=cmd_sign)

    schema = sub.add_parser("schema", help="print the config JSON Schema")
    schema.set_defaults(func=cmd_schema)

    asyncapi = sub.add_parser(
        "asyncapi", help="print the AsyncAPI 3.0 contract of every Kafka destination"
    )
    asyncapi.add_argument("--config")
    asyncapi.set_defaults(func=cmd_asyncapi)

    console = sub.add_parser("console", help="the operator console (web page + JSON API)")
    console.add_argument("--config")
    console.add_argument("--listen", help="host:port (default: console.listen)")
    console.set_defaults(func=cmd_console)

    dev = sub.add_parser("dev", help="local broker + gateway with config/dev.yaml")
    dev.add_argument("--config", default="config/dev.yaml")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--broker-port", type=int, default=9092)
    dev.add_argument("--console-port", type=int, default=8081)
    dev.set_defaults(func=cmd_dev)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gateway` console script."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
