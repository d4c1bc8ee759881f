"""The one YAML config file -> frozen msgspec Structs, validated completely, once, at start-up.

Every problem is collected (not just the first) and reported with the file, the line and
the path inside the document (`routes[3].match.where[0]`). `${env:NAME}`,
`${env:NAME:-default}` and `${file:/path}` references are resolved while loading; the values
they bring in are scrubbed from every message, so a secret never reaches an error.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
import yaml

from gateway import transform
from gateway.errors import ConfigError
from gateway.event import STATUSES
from gateway.providers import registry
from gateway.secrets import Secret
from gateway.state import StateConfig
from gateway.tracing import TracingConfig
from gateway.types import Duration, RateLimit, Secrets, ascii_int, dec_hook
from routing import Router, RoutingConfigError, compile_routes, format_path

PathT = tuple[str | int, ...]
Positive = Annotated[int, msgspec.Meta(gt=0)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class ServerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`server:` settings of the HTTP ingress."""

    max_body_bytes: Positive = 1_048_576
    dedupe_window: Duration = Duration(86_400)
    dedupe_max_entries: Positive = 1_000_000
    handoff_timeout: Duration = Duration(10)
    retry_after: Duration = Duration(5)
    unready_after: Duration = Duration(15)
    request_read_timeout: Duration = Duration(15)
    # Request heads, enforced while reading (431): request line + headers, one header, count.
    max_header_bytes: Positive = 16_384
    max_header_field_bytes: Positive = 8_192
    max_headers: Positive = 100
    trusted_proxies: list[str] = []
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"


class KafkaConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`kafka:` producer/consumer settings shared by every Kafka destination and the queue."""

    bootstrap_servers: str = "localhost:9092"
    client_id: str = "webhook-gateway"
    acks: Literal["all", -1] = "all"
    enable_idempotence: bool = True
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    linger_ms: NonNegative = 1
    max_batch_size: Positive = 65_536
    # Largest record the producer sends (aiokafka's `max_request_size`); keep it at or below
    # the broker's `message.max.bytes`. Default: server.max_body_bytes + ENVELOPE_ALLOWANCE.
    max_request_size: Positive | None = None
    request_timeout: Duration = Duration(30)
    metadata_max_age: Duration = Duration(300)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: Secrets | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    delivery_topic: str = "gateway.deliveries"
    dead_letter_topic: str = "gateway.dead-letter"
    # Retries waiting longer than the shortest tier wait on these topics (`<delivery_topic>
    # .delay.<tier>`), not in memory; `control_topic` (compacted) carries pause/resume.
    delay_tiers: tuple[Duration, ...] = (Duration(10), Duration(60), Duration(600), Duration(3600))
    control_topic: str = "gateway.control"
    # The journal (what the ingress and workers did, for the console); none: not journaled.
    journal_topic: str | None = None
    journal_buffer: Positive = 10_000
    consumer_group: str = "webhook-gateway-delivery"
    session_timeout: Duration = Duration(10)
    heartbeat_interval: Duration = Duration(3)
    create_topics: bool = False
    topic_partitions: Positive = 3
    topic_replication: Positive = 1


class KafkaDestination(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A Kafka topic destination (SPEC §5)."""

    topic: str
    key: str = "partitionkey"
    mode: Literal["structured", "binary"] = "structured"


class Backoff(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Exponential backoff with full jitter between delivery attempts."""

    initial: Duration = Duration(1)
    max: Duration = Duration(3600)


class WebhookDestination(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An outbound webhook destination, signed per Standard Webhooks (SPEC §5)."""

    url: str
    secret: Secrets
    timeout: Duration = Duration(15)
    max_attempts: Positive = 12
    backoff: Backoff = Backoff()
    concurrency: Positive = 16
    headers: dict[str, str] = {}
    ordering: Literal["none", "key"] = "none"  # key: one at a time, in order, per partitionkey
    rate_limit: RateLimit | None = None  # `50/s`, `600/m`: fleet-wide with state.backend redis


class Destination(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One destination: exactly one of `kafka` or `webhook`."""

    kafka: KafkaDestination | None = None
    webhook: WebhookDestination | None = None
    # A JMESPath expression over the event; its result replaces `data` (gateway.transform).
    transform: str | None = None


class SpoolConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`spool:` the local durable spool used while the broker cannot ack (opt-in)."""

    path: str
    max_bytes: Positive = 1_073_741_824  # per spool file, whatever the number of processes
    drain_interval: Duration = Duration(1)
    drain_batch: Positive = 2000  # events (at most 16 MiB) read and sent at once by the drainer
    shutdown_drain: Duration = Duration(10)  # how long a stopping process keeps draining


class ConsoleUser(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One person or robot allowed into the console."""

    name: str
    token: Secret
    role: Literal["viewer", "operator"] = "viewer"


class ConsoleConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`console:` the operator console (`gateway console`), fed by `kafka.journal_topic`."""

    listen: str = "127.0.0.1:8081"
    users: list[ConsoleUser] = []
    retention: Duration = Duration(7 * 86_400)
    max_rows: Positive = 500_000
    omit: list[str] = []
    store: str | None = None  # SQLite file; none: in memory, rebuilt from Kafka at start
    session_ttl: Duration = Duration(12 * 3600)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Room for the CloudEvent envelope around a body of `server.max_body_bytes` (attributes,
# normalized `data`, headers): the default `kafka.max_request_size` is the body limit plus this.
ENVELOPE_ALLOWANCE = 65_536


class Source(msgspec.Struct, frozen=True, kw_only=True):
    """One configured source: served at `POST /webhooks/<name>`."""

    name: str
    provider: str
    settings: Any  # the provider's own `settings` Struct
    allow_ips: tuple[IPNetwork, ...] = ()


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The whole validated configuration."""

    path: str
    server: ServerConfig
    kafka: KafkaConfig
    sources: dict[str, Source]
    destinations: dict[str, Destination]
    router: Router
    trusted_proxies: tuple[IPNetwork, ...] = ()
    spool: SpoolConfig | None = None
    tracing: TracingConfig = TracingConfig()
    console: ConsoleConfig | None = None
    state: StateConfig = StateConfig()

    def max_request_size(self) -> int:
        """The largest Kafka record the producer sends (and the ingress accepts), in bytes."""
        explicit = self.kafka.max_request_size
        return explicit if explicit is not None else self.server.max_body_bytes + ENVELOPE_ALLOWANCE

    def kafka_destinations(self) -> dict[str, KafkaDestination]:
        """Destinations of the Kafka kind, by name."""
        return {n: d.kafka for n, d in self.destinations.items() if d.kafka is not None}

    def webhook_destinations(self) -> dict[str, WebhookDestination]:
        """Destinations of the webhook kind, by name."""
        return {n: d.webhook for n, d in self.destinations.items() if d.webhook is not None}


# ---------------------------------------------------------------------------------------------
# Loading: YAML nodes -> plain values with a line for every path, references resolved.

_REFERENCE = re.compile(r"\$\{(env|file):([^}]*)\}")
_TOP_LEVEL = (
    "server",
    "kafka",
    "spool",
    "state",
    "tracing",
    "console",
    "sources",
    "destinations",
    "routes",
    "unmatched",
)
_SOURCE_COMMON = ("provider", "allow_ips")
_PRESETS = ("standard-webhooks", "github", "shopify", "stripe")
_GENERIC = ("hmac", *_PRESETS)


@dataclass
class _Loaded:
    """A parsed document with the line of every node and the values references brought in."""

    file: str
    base_dir: Path = Path(".")
    lines: dict[PathT, int] = field(default_factory=dict)
    revealed: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    unresolved: set[PathT] = field(default_factory=set)

    def line_of(self, path: PathT) -> int:
        """The line of the node at `path`, or of its closest ancestor that exists."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, path: PathT, message: str) -> None:
        """Record a problem at `path`, scrubbing any referenced value from the message.

        A node whose `${...}` reference failed already has its error; what validation then
        says about the empty value at or around it would only be noise.
        """
        if any(p[: len(path)] == path or path[: len(p)] == p for p in self.unresolved):
            return
        for value in sorted(self.revealed, key=len, reverse=True):
            if len(value) >= 3:
                message = message.replace(value, "***")
        where = format_path(path) or "<document>"
        self.problems.append(f"{self.file}:{self.line_of(path)}: {where}: {message}")


def _resolve(text: str, path: PathT, doc: _Loaded) -> str:
    """Substitute `${env:...}` / `${file:...}` references in one scalar."""

    def substitute(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "env":
            name, sep, default = arg.partition(":-")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                doc.error(path, f"`${{env:{arg}}}` is not a valid environment reference")
                return ""
            value = os.environ.get(name)
            if value is None or (value == "" and sep):
                if sep:
                    return default
                doc.error(path, f"environment variable {name} is not set")
                doc.unresolved.add(path)
                return ""
        else:
            try:
                value = (doc.base_dir / arg).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
                doc.error(path, f"cannot read `${{file:{arg}}}`: {reason}")
                doc.unresolved.add(path)
                return ""
        doc.revealed.add(value)
        return value

    return _REFERENCE.sub(substitute, text)


def _to_python(node: yaml.Node, path: PathT, doc: _Loaded) -> Any:
    """Build plain values from a composed YAML node, recording lines and resolving references."""
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if not isinstance(key, str):
                doc.error(path, f"keys must be strings, got {key!r}")
                continue
            if key in out:
                doc.error((*path, key), "duplicate key")
                continue
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, (*path, key), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), doc) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    if node.tag == "tag:yaml.org,2002:str":
        return _resolve(node.value, path, doc) if "${" in node.value else node.value
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    """A node as the safe loader would construct it (ints, bools, null, strings)."""
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        return node.value
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _parse_yaml(text: str, doc: _Loaded) -> Any:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        doc.problems.append(f"{doc.file}:{line}: <document>: invalid YAML: {problem}")
        return None
    if root is None:
        return {}
    return _to_python(root, (), doc)


# ---------------------------------------------------------------------------------------------
# Validation: convert field by field so that every problem is found in one pass.

_MISSING = object()


def _convert(value: Any, type_: Any, path: PathT, doc: _Loaded) -> Any:
    """Convert `value` to `type_`, recording every problem; returns `_MISSING` on failure."""
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return _convert_struct(value, type_, path, doc)
    origin = typing.get_origin(type_)
    args = typing.get_args(type_)
    if origin is dict and len(args) == 2 and _is_struct(args[1]):
        if not isinstance(value, dict):
            doc.error(path, f"expected a mapping, got {_kind(value)}")
            return _MISSING
        items = {k: _convert(v, args[1], (*path, k), doc) for k, v in value.items()}
        return _MISSING if _MISSING in items.values() else items
    if origin in (types.UnionType, typing.Union) and value is None and type(None) in args:
        return None
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and _is_struct(inner[0]):
            return _convert(value, inner[0], path, doc)
    try:
        return msgspec.convert(value, type_, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        message, sub = _split_msgspec_error(str(exc))
        if message.startswith("Invalid enum value") and origin is Literal and not sub:
            message += f" (expected one of: {', '.join(map(str, args))})"
        doc.error((*path, *sub), message)
        return _MISSING


def _convert_struct(value: Any, type_: type[msgspec.Struct], path: PathT, doc: _Loaded) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        doc.error(path, f"expected a mapping, got {_kind(value)}")
        return _MISSING
    fields = {f.encode_name: f for f in msgspec.structs.fields(type_)}
    ok = True
    for key in value:
        if key not in fields:
            doc.error((*path, key), f"unknown key `{key}` (expected one of: {', '.join(fields)})")
            ok = False
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in value:
            if f.required:
                doc.error(path, f"missing required key `{name}`")
                ok = False
            continue
        converted = _convert(value[name], f.type, (*path, name), doc)
        if converted is _MISSING:
            ok = False
        else:
            kwargs[f.name] = converted
    if not ok:
        return _MISSING
    try:
        return type_(**kwargs)
    except (TypeError, ValueError) as exc:  # pragma: no cover - fields were validated one by one
        doc.error(path, str(exc))
        return _MISSING


def _is_struct(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, msgspec.Struct)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


_MSGSPEC_PATH = re.compile(r"^(.*) - at `\$(.*)`$", re.S)


def _split_msgspec_error(message: str) -> tuple[str, PathT]:
    """`Expected int, got str - at `$.a[0]`` -> ("Expected int, got str", ("a", 0))."""
    m = _MSGSPEC_PATH.match(message)
    if not m:
        return message, ()
    parts: list[str | int] = []
    for token in re.findall(r"\.([^.\[]+)|\[(\d+)\]|\[('.*?'|\".*?\")\]", m.group(2)):
        name, index, quoted = token
        if name:
            parts.append(name)
        elif index:
            parts.append(int(index))
        else:
            parts.append(quoted[1:-1])
    return m.group(1), tuple(parts)


def _networks(value: Any, path: PathT, doc: _Loaded) -> tuple[IPNetwork, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        doc.error(path, "expected a list of CIDRs")
        return ()
    out: list[IPNetwork] = []
    for i, item in enumerate(value):
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            doc.error((*path, i), f"`{item}` is not an IP address or CIDR")
    return tuple(out)


def _sources(raw: Any, doc: _Loaded) -> dict[str, Source]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        doc.error(("sources",), f"expected a mapping of source names, got {_kind(raw)}")
        return {}
    providers = registry()
    out: dict[str, Source] = {}
    for name, body in raw.items():
        path: PathT = ("sources", name)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            doc.error(path, "source names may hold letters, digits, `_`, `.` and `-` only")
            continue
        if not isinstance(body, dict):
            doc.error(path, f"expected a mapping, got {_kind(body)}")
            continue
        provider_name = body.get("provider")
        provider = providers.get(provider_name) if isinstance(provider_name, str) else None
        if provider is None:
            doc.error(
                (*path, "provider") if "provider" in body else path,
                f"`provider` must be one of: {', '.join(sorted(providers))}",
            )
            continue
        allow_ips = _networks(body.get("allow_ips"), (*path, "allow_ips"), doc)
        rest = {k: v for k, v in body.items() if k not in _SOURCE_COMMON}
        if provider.name in _PRESETS:
            takes = [f.encode_name for f in msgspec.structs.fields(provider.settings)]
            for key in [k for k in rest if k not in takes]:
                doc.error(
                    (*path, key),
                    f"the `{provider.name}` preset does not take `{key}` (it takes: "
                    f"{', '.join(takes)}); use `provider: hmac` for a custom scheme",
                )
                del rest[key]
        settings = _convert(rest, provider.settings, path, doc)
        if settings is _MISSING:
            continue
        try:
            provider.for_source(settings).build_verifier(settings)
        except ValueError as exc:
            message = str(exc)
            # A generic source's message starts with the key it is about: point at it.
            named = re.match(r"`([a-z_.]+)`", message) if provider.name in _GENERIC else None
            at = tuple(named.group(1).split(".")) if named else ()
            doc.error((*path, *at) if at and at[0] in rest else path, message)
            continue
        out[name] = Source(
            name=name, provider=provider.name, settings=settings, allow_ips=allow_ips
        )
    return out


def _destinations(raw: Any, doc: _Loaded) -> dict[str, Destination]:
    if raw is None:
        return {}
    converted = _convert(raw, dict[str, Destination], ("destinations",), doc)
    if converted is _MISSING:
        return {}
    out: dict[str, Destination] = {}
    for name, dest in converted.items():
        path: PathT = ("destinations", name)
        if (dest.kafka is None) == (dest.webhook is None):
            doc.error(path, "a destination needs exactly one of `kafka` or `webhook`")
            continue
        if dest.webhook is not None:
            _check_webhook(dest.webhook, (*path, "webhook"), doc)
        if dest.transform is not None:
            try:
                transform.parse(dest.transform)
            except transform.TransformError as exc:
                doc.error((*path, "transform"), str(exc))
                continue
        out[name] = dest
    return out


def _check_webhook(hook: WebhookDestination, path: PathT, doc: _Loaded) -> None:
    url = urlsplit(hook.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        doc.error((*path, "url"), "expected an absolute http(s) URL")
    for i, secret in enumerate(hook.secret.reveal()):
        body = secret.removeprefix("whsec_")
        try:
            if not base64.b64decode(body, validate=True):
                raise ValueError("empty")
        except (ValueError, binascii.Error):
            doc.error((*path, "secret", i), "expected a Standard Webhooks secret `whsec_<base64>`")
    if hook.backoff.initial > hook.backoff.max:
        doc.error((*path, "backoff"), "`initial` must not exceed `max`")


def _console(raw: Any, doc: _Loaded) -> Any:
    console = _convert(raw, ConsoleConfig, ("console",), doc)
    if console is _MISSING:
        return console
    host, _, port = console.listen.rpartition(":")
    number = ascii_int(port, 5)
    if not host or number is None or not 0 < number < 65536:
        doc.error(("console", "listen"), "expected `host:port`, e.g. `0.0.0.0:8081`")
    names: set[str] = set()
    tokens: set[str] = set()
    for i, user in enumerate(console.users):
        if user.name in names:
            doc.error(("console", "users", i, "name"), f"duplicate user `{user.name}`")
        names.add(user.name)
        token = user.token.reveal()
        if len(token) < 16:
            doc.error(("console", "users", i, "token"), "a token needs at least 16 characters")
        elif token in tokens:
            doc.error(("console", "users", i, "token"), "two users share one token")
        tokens.add(token)
    return console


def _check_state(state: StateConfig, doc: _Loaded) -> None:
    if state.backend == "redis" and state.url is None:
        doc.error(("state",), "`url` is required with `backend: redis`")
    if state.url is not None:
        try:
            url = urlsplit(state.url.reveal())
            url.port  # noqa: B018 - raises on a bad port
        except ValueError:
            url = urlsplit("")
        if url.scheme not in ("redis", "rediss", "unix") or not (url.hostname or url.path):
            doc.error(("state", "url"), "expected a redis://, rediss:// or unix:// URL")
    if state.timeout <= 0:
        doc.error(("state", "timeout"), "must be positive")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, resolve and validate the config file; raise `ConfigError` with every problem."""
    file = str(path)
    # Relative `${file:}` paths are read relative to the config file, not the working dir.
    doc = _Loaded(file=file, base_dir=Path(file).resolve().parent)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot read config: {exc}"]) from exc
    return parse_config(text, file, doc)


def parse_config(text: str, file: str = "<config>", doc: _Loaded | None = None) -> Config:
    """Validate config text (see `load_config`)."""
    doc = doc or _Loaded(file=file)
    raw = _parse_yaml(text, doc)
    if raw is None and doc.problems:  # not YAML at all: nothing further to check
        raise ConfigError(doc.problems)
    if not isinstance(raw, dict):
        doc.error((), f"expected a mapping at the top level, got {_kind(raw)}")
        raise ConfigError(doc.problems)
    for key in raw:
        if key not in _TOP_LEVEL:
            doc.error((key,), f"unknown key `{key}` (expected one of: {', '.join(_TOP_LEVEL)})")
    server = _convert(raw.get("server"), ServerConfig, ("server",), doc)
    kafka = _convert(raw.get("kafka"), KafkaConfig, ("kafka",), doc)
    spool = (
        None if raw.get("spool") is None else _convert(raw["spool"], SpoolConfig, ("spool",), doc)
    )
    tracing = _convert(raw.get("tracing"), TracingConfig, ("tracing",), doc)
    console = None if raw.get("console") is None else _console(raw["console"], doc)
    state = _convert(raw.get("state"), StateConfig, ("state",), doc)
    if state is not _MISSING:
        _check_state(state, doc)
    sources = _sources(raw.get("sources"), doc)
    destinations = _destinations(raw.get("destinations"), doc)
    if not sources and ("sources",) not in doc.lines:
        doc.error(("sources",), "at least one source is required")
    trusted: tuple[IPNetwork, ...] = ()
    if server is not _MISSING:
        trusted = _networks(server.trusted_proxies, ("server", "trusted_proxies"), doc)
    if kafka is not _MISSING and kafka.request_timeout <= kafka.session_timeout:
        doc.error(
            ("kafka", "request_timeout"),
            "must exceed `session_timeout`, or consumer-group joins time out",
        )
    if (
        kafka is not _MISSING
        and server is not _MISSING
        and kafka.max_request_size is not None
        and kafka.max_request_size < server.max_body_bytes
    ):
        doc.error(
            ("kafka", "max_request_size"),
            f"{kafka.max_request_size} is below server.max_body_bytes "
            f"({server.max_body_bytes}): bodies the ingress accepts could never be produced; "
            f"use at least max_body_bytes + {ENVELOPE_ALLOWANCE} (the CloudEvent envelope)",
        )
    if kafka is not _MISSING and kafka.sasl_mechanism and kafka.sasl_password is None:
        doc.error(("kafka",), "`sasl_password` is required with `sasl_mechanism`")
    router: Router | None = None
    declared = raw.get("destinations")
    known = set(declared) if isinstance(declared, dict) else set()
    # Routes are checked against the sources as declared, so that one broken source does
    # not also make every route that names it "unreachable".
    raw_sources = raw.get("sources")
    declared_sources = {
        name: body["provider"]
        for name, body in (raw_sources.items() if isinstance(raw_sources, dict) else [])
        if isinstance(body, dict) and isinstance(body.get("provider"), str)
    }
    try:
        router = compile_routes(
            raw.get("routes"), raw.get("unmatched"), known, declared_sources, statuses=STATUSES
        )
    except RoutingConfigError as exc:
        for problem in exc.errors:
            doc.error(tuple(problem.path), problem.message)
    if (
        doc.problems
        or router is None
        or _MISSING in (server, kafka, spool, tracing, state, console)
    ):
        raise ConfigError(doc.problems)
    return Config(
        path=file,
        server=server,
        kafka=kafka,
        sources=sources,
        destinations=destinations,
        router=router,
        trusted_proxies=trusted,
        spool=spool,
        tracing=tracing,
        state=state,
        console=console,
    )


def config_path(explicit: str | None) -> str:
    """The config file to use: `--config`, else `GATEWAY_CONFIG`, else `config/gateway.yaml`."""
    return explicit or os.environ.get("GATEWAY_CONFIG") or "config/gateway.yaml"


def settings_summary(config: Config) -> Mapping[str, Any]:
    """A secret-free summary of the config for `gateway check`."""
    return {
        "sources": {n: s.provider for n, s in config.sources.items()},
        "destinations": {
            n: (f"kafka topic {d.kafka.topic}" if d.kafka else f"webhook {d.webhook.url}")  # type: ignore[union-attr]
            for n, d in config.destinations.items()
        },
        "routes": [r.name for r in config.router.routes],
        "unmatched": list(config.router.unmatched),
    }
