"""The chart's Grafana dashboard reads only metrics the gateway exports; it ships as a ConfigMap."""

from __future__ import annotations

import json
import re
from typing import Any

import prometheus_client
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import gateway.metrics
from tests.helm.support import CHART, Doc, Helm

pytestmark = pytest.mark.helm

DASHBOARD = CHART / "dashboards" / "webhook-gateway.json"
# Labels Prometheus adds to every scraped series (the ServiceMonitor's targets carry them).
TARGET_LABELS = {"namespace", "job", "pod"}
# Every selector is narrowed by these dashboard variables, plus `source` / `destination`
# wherever the metric has that label.
SCOPE = {"namespace": '=~"$namespace"', "job": '=~"$job"'}
FILTERS = {"source": '=~"$source"', "destination": '=~"$destination"'}

SELECTOR = re.compile(r"\b(gateway_\w+)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r'\s*(\w+)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"^label_values\((\w+)(?:\{([^}]*)\})?,\s*(\w+)\)$")
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                   "and", "or", "unless", "offset"}  # fmt: skip


def exported_series() -> dict[str, str]:
    """Series name -> family, from prometheus-client's registry once gateway.metrics is imported."""
    names: dict[str, str] = {}
    for family in prometheus_client.REGISTRY.collect():
        if not family.name.startswith("gateway_"):
            continue  # the process / platform / GC collectors prometheus-client registers itself
        if family.type == "counter":
            names[f"{family.name}_total"] = family.name
        elif family.type == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                names[family.name + suffix] = family.name
        else:
            names[family.name] = family.name
    return names


def family_labels() -> dict[str, set[str]]:
    """Metric family -> its label names, from the collectors gateway.metrics defines."""
    out: dict[str, set[str]] = {}
    for value in vars(gateway.metrics).values():
        if isinstance(value, MetricWrapperBase | gateway.metrics._Family):
            # Both keep the declared label names here (prometheus-client has no accessor).
            labelnames = value._labelnames
            assert isinstance(labelnames, tuple)
            out[value._name] = set(labelnames)
    return out


def load() -> Doc:
    """The dashboard JSON."""
    dashboard: Doc = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: Doc) -> list[Doc]:
    """Every panel that draws something (rows excluded, collapsed rows' children included)."""
    out: list[Doc] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out += panel.get("panels", [])
        else:
            out.append(panel)
    return out


def exprs(dashboard: Doc) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target."""
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p["targets"]]


def variables(dashboard: Doc) -> dict[str, Doc]:
    """Template variables by name."""
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def matchers(body: str | None) -> dict[str, str]:
    """`{a=~"x", b!="y"}` -> {"a": '=~"x"', "b": '!="y"'}."""
    out: dict[str, str] = {}
    for part in filter(str.strip, re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", body or "")):
        match = MATCHER.fullmatch(part)
        assert match, f"unparsed matcher {part!r}"
        out[match.group(1)] = match.group(2) + match.group(3)
    return out


def bare_identifiers(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that can only be metric names."""
    rest = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    rest = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", rest)
    rest = GROUPING.sub("", rest)
    rest = re.sub(r"\b[a-zA-Z_:][\w:]*\s*\(", "(", rest)  # functions and aggregations
    return {t for t in re.findall(r"\b[a-zA-Z_:][\w:]*", rest) if t not in PROMQL_KEYWORDS}


# --- the JSON ------------------------------------------------------------------------------


def test_dashboard_json_is_a_grafana_dashboard() -> None:
    """The file parses; panels have unique ids, fit the 24-column grid and never overlap."""
    dashboard = load()
    assert dashboard["uid"] == "webhook-gateway"
    assert dashboard["title"] == "Webhook gateway"
    assert dashboard["id"] is None  # provisioning assigns it
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    ids = [p["id"] for p in [*rows, *panels(dashboard)]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_datasource_is_a_variable_used_by_every_query() -> None:
    """`${datasource}` picks the Prometheus: every panel, target and variable query uses it."""
    dashboard = load()
    found = variables(dashboard)
    assert found["datasource"]["type"] == "datasource"
    assert found["datasource"]["query"] == "prometheus"
    uses = [p["datasource"] for p in panels(dashboard)]
    uses += [t["datasource"] for p in panels(dashboard) for t in p["targets"]]
    uses += [v["datasource"] for v in found.values() if v["type"] == "query"]
    assert uses and all(u == {"type": "prometheus", "uid": "${datasource}"} for u in uses)
    assert "${datasource}" not in json.dumps([v for v in found.values() if v["type"] != "query"])


def test_source_and_destination_variables_list_the_label_values() -> None:
    """`source` and `destination` offer every value (All = any) of the labels they filter on."""
    found = variables(load())
    for name, metric in (
        ("source", "gateway_webhooks_received_total"),
        ("destination", "gateway_deliveries_total"),
    ):
        variable = found[name]
        match = LABEL_VALUES.match(variable["definition"])
        assert match and match.group(1) == metric and match.group(3) == name
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"


# --- metrics and labels ----------------------------------------------------------------------


def test_every_queried_metric_is_exported_by_the_gateway() -> None:
    """Each series a panel or variable reads is registered by gateway.metrics (counters: _total)."""
    dashboard = load()
    series = exported_series()
    assert "gateway_webhooks_received_total" in series  # the registry was read
    unknown: list[str] = []
    for title, expr in exprs(dashboard):
        names = {m.group(1) for m in SELECTOR.finditer(expr)}
        assert names, f"{title}: no gateway metric in {expr}"
        # Any other bare identifier would be a metric the gateway does not export.
        unknown += [f"{title}: {n}" for n in (names | bare_identifiers(expr)) - series.keys()]
    for name, variable in variables(dashboard).items():
        if variable["type"] == "query":
            match = LABEL_VALUES.match(variable["definition"])
            assert match, f"variable {name}: {variable['definition']}"
            assert variable["query"]["query"] == variable["definition"]
            if match.group(1) not in series:
                unknown.append(f"variable {name}: {match.group(1)}")
    assert not unknown, "not exported by gateway/metrics.py:\n" + "\n".join(unknown)


def test_queries_use_labels_the_metrics_have_and_honour_the_variables() -> None:
    """Matchers and `by` use real labels; every selector is scoped to $namespace/$job and to
    $source / $destination wherever the metric carries that label."""
    series, labels = exported_series(), family_labels()
    problems: list[str] = []
    for title, expr in exprs(load()):
        available = set(TARGET_LABELS)
        for match in SELECTOR.finditer(expr):
            name, body = match.group(1), match.group(2)
            family = series.get(name, name)
            own = labels.get(family, set()) | ({"le"} if name.endswith("_bucket") else set())
            available |= own
            given = matchers(body)
            for label in set(given) - own - TARGET_LABELS:
                problems.append(f"{title}: {name} has no label {label}")
            wanted = SCOPE | {k: v for k, v in FILTERS.items() if k in own}
            for label, matcher in wanted.items():
                if given.get(label) != matcher:
                    problems.append(f"{title}: {name} lacks {label}{matcher}")
        for group in GROUPING.findall(expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                if label not in available:
                    problems.append(f"{title}: grouping by {label}, which no metric here has")
    assert not problems, "\n".join(problems)


def test_every_gateway_metric_has_a_panel() -> None:
    """Each metric family gateway.metrics defines is drawn (a new metric needs a panel)."""
    series = exported_series()
    drawn = {series[m.group(1)] for _, e in exprs(load()) for m in SELECTOR.finditer(e)}
    missing = set(series.values()) - drawn
    assert not missing, f"metrics without a panel in {DASHBOARD.name}: {sorted(missing)}"


@pytest.mark.parametrize(
    ("title", "metric", "grouping"),
    [
        ("Webhooks received by source and outcome", "gateway_webhooks_received_total", "source, outcome"),
        ("Rejections by reason", "gateway_webhooks_received_total", "outcome"),
        ("Verification failures by source and reason", "gateway_verification_failures_total", "source, reason"),
        ("Request duration p50 / p99 by source", "gateway_request_duration_seconds_bucket", "source, le"),
        ("Route matches by route", "gateway_route_matches_total", "route"),
        ("Kafka produce results by topic", "gateway_kafka_produce_total", "topic, result"),
        ("Kafka produce latency p99 by topic", "gateway_kafka_produce_latency_seconds_bucket", "topic, le"),
        ("Deliveries by destination and outcome", "gateway_deliveries_total", "destination, outcome"),
        ("Delivery attempt p99 by destination", "gateway_delivery_attempt_seconds_bucket", "destination, le"),
        ("Dead-lettered by destination", "gateway_dead_lettered_total", "destination"),
        ("Circuit breaker by destination", "gateway_circuit_state", "destination"),
    ],
)  # fmt: skip
def test_panels_break_down_by_the_promised_labels(title: str, metric: str, grouping: str) -> None:
    """Each breakdown panel reads its metric and groups by the labels its title names."""
    (panel,) = [p for p in panels(load()) if p["title"] == title]
    for target in panel["targets"]:
        assert metric in target["expr"]
        assert f"by ({grouping})" in target["expr"]


def test_rejections_exclude_the_successful_outcomes() -> None:
    """The rejection panel counts every outcome but accepted, duplicate and unrouted."""
    (panel,) = [p for p in panels(load()) if p["title"] == "Rejections by reason"]
    (target,) = panel["targets"]
    (body,) = [m.group(2) for m in SELECTOR.finditer(target["expr"])]
    assert matchers(body)["outcome"] == '!~"accepted|duplicate|unrouted"'


def test_latency_panels_are_quantiles_of_histograms() -> None:
    """p50/p99 panels apply histogram_quantile to `_bucket` rates summed by `le`."""
    quantiles = [(t, e) for t, e in exprs(load()) if "histogram_quantile" in e]
    assert len(quantiles) == 4
    for title, expr in quantiles:
        assert re.match(r"histogram_quantile\(0\.(5|99), sum by \([\w, ]*\ble\) \(rate\(", expr)
        assert "_bucket{" in expr, title


# --- the ConfigMap -------------------------------------------------------------------------


def test_dashboard_configmap_is_off_by_default(default_docs: list[Doc]) -> None:
    """Without grafanaDashboard.enabled no dashboard ConfigMap is rendered."""
    assert not [d for d in default_docs if "webhook-gateway.json" in d.get("data", {})]


def test_dashboard_configmap_carries_the_file_for_the_sidecar(all_on_docs: list[Doc]) -> None:
    """The ConfigMap holds the chart's dashboard JSON as is, labelled for the Grafana sidecar."""
    (configmap,) = [d for d in all_on_docs if "webhook-gateway.json" in d.get("data", {})]
    metadata = configmap["metadata"]
    assert metadata["name"] == "gw-webhook-gateway-dashboard"
    assert metadata["namespace"] == "monitoring"
    assert metadata["labels"]["grafana_dashboard"] == "1"
    assert metadata["labels"]["team"] == "payments"
    assert metadata["labels"]["app.kubernetes.io/instance"] == "gw"
    assert metadata["annotations"] == {"grafana_folder": "Payments"}
    assert configmap["data"]["webhook-gateway.json"] == DASHBOARD.read_text().rstrip("\n")
    assert json.loads(configmap["data"]["webhook-gateway.json"]) == load()


def test_dashboard_label_value_can_be_overridden(helm: Helm) -> None:
    """A grafana_dashboard value in grafanaDashboard.labels replaces the default, rendered once."""
    result = helm.template_result(
        extra=["--set", "grafanaDashboard.enabled=true",
               "--set-string", "grafanaDashboard.labels.grafana_dashboard=webhooks"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("grafana_dashboard:") == 1
    docs: list[Any] = [d for d in yaml.safe_load_all(result.stdout) if d]
    (configmap,) = [d for d in docs if "webhook-gateway.json" in d.get("data", {})]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "webhooks"
    assert "namespace" not in configmap["metadata"]  # the release namespace
