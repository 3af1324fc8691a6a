"""One dashboard and one rule file, used by the chart and the compose stack, naming only
metrics the gateway exports (PRODUCT.md "Metrics")."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

import chartkit

FILES = chartkit.CHART_DIR / "files"
DASHBOARD = FILES / "dashboard.json"
ALERTS = FILES / "alerts.yaml"

# PRODUCT.md "Metrics", plus the two gauges the lead added for re-auth and the usage queue.
CONTRACT_METRICS = {
    "gateway_http_requests_total": {"route", "method", "status"},
    "gateway_http_request_duration_seconds": {"route"},
    "gateway_tool_calls_total": {"tenant", "tool", "outcome"},
    "gateway_tool_call_duration_seconds": {"tool"},
    "gateway_upstream_sessions": {"tenant"},
    "gateway_upstream_session_events_total": {"event"},
    "gateway_rate_limited_total": {"tenant", "reason"},
    "gateway_usage_events_written_total": set(),
    "gateway_usage_events_dropped_total": set(),
    "gateway_circuit_open": {"tenant"},
    "gateway_build_info": {"version"},
    "gateway_credentials_rejected": {"tenant"},
    "gateway_usage_queue_depth": set(),
}
HISTOGRAMS = {"gateway_http_request_duration_seconds", "gateway_tool_call_duration_seconds"}
# Labels Prometheus or the Kubernetes service discovery attach, usable in any selector.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "le"}


def _metric_base(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)]
    return name


def _gateway_metrics(expr: str) -> set[str]:
    # Recorded series (`namespace_job:gateway_...:rate5m`) are ours, not the gateway's.
    return set(re.findall(r"(?<![:\w])(gateway_[a-z_]+)\b(?!:)", expr))


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names) of each `metric{...}` selector in a PromQL expression."""
    return [
        (metric, set(re.findall(r"([a-zA-Z_]+)\s*(?:=~|!~|!=|=)", body)))
        for metric, body in re.findall(r"(?<![:\w])(gateway_[a-z_]+)\{([^}]*)\}", expr)
    ]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


# -- dashboard --------------------------------------------------------------------------------


def test_dashboard_uses_only_contract_metrics_and_their_labels():
    exprs = _dashboard_exprs()
    assert exprs
    for expr in exprs:
        for metric in _gateway_metrics(expr):
            assert _metric_base(metric) in CONTRACT_METRICS, f"unknown metric {metric} in {expr}"
        for metric, labels in _selectors(expr):
            allowed = CONTRACT_METRICS[_metric_base(metric)] | TARGET_LABELS
            assert labels <= allowed, f"{metric} has no label(s) {labels - allowed}"


def test_dashboard_covers_every_required_view():
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    exprs = " ".join(_dashboard_exprs())
    for needle in ("request rate", "errors by status", "p50 / p99", "tool calls by tool and tenant",
                   "rate-limited and quota", "sessions", "session events", "circuit", "re-auth",
                   "usage events written / dropped", "usage queue"):
        assert needle in titles, needle
    for metric in CONTRACT_METRICS:
        assert metric in exprs, f"no panel shows {metric}"
    assert 'outcome!="ok"' in exprs  # problem codes via the tool outcome
    assert "histogram_quantile(0.99" in exprs and "histogram_quantile(0.5" in exprs


def test_dashboard_queries_go_through_the_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "intercom-mcp-gateway"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert any(v["name"] == "datasource" and v["type"] == "datasource" for v in dashboard["templating"]["list"])
    for p in dashboard["panels"]:
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}", p["title"]


def test_chart_dashboard_configmap_is_the_file_with_the_sidecar_label(all_on, all_on_values):
    cm = next(c for c in all_on.of_kind("ConfigMap") if c["metadata"]["name"].endswith("-dashboard"))
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == all_on_values["grafanaDashboard"]["namespace"]
    assert json.loads(cm["data"]["intercom-mcp-gateway.json"]) == json.loads(DASHBOARD.read_text())


# -- rules ------------------------------------------------------------------------------------


def test_rules_use_only_contract_metrics():
    for rule in _rules():
        for metric in _gateway_metrics(rule["expr"]):
            assert _metric_base(metric) in CONTRACT_METRICS, f"unknown metric {metric}"
        for metric, labels in _selectors(rule["expr"]):
            allowed = CONTRACT_METRICS[_metric_base(metric)] | TARGET_LABELS
            assert labels <= allowed, f"{metric} has no label(s) {labels - allowed}"


def test_rules_cover_burn_rate_latency_circuit_reauth_drops_and_flapping():
    alerts = {r["alert"]: r for r in _rules() if "alert" in r}
    assert {"GatewayErrorBudgetBurnFast", "GatewayErrorBudgetBurnSlow", "GatewayHighLatencyP99",
            "GatewayUpstreamUnavailable", "GatewayTenantReauthRequired", "GatewayUsageEventsDropped",
            "GatewayReadinessFlapping"} <= set(alerts)
    fast = alerts["GatewayErrorBudgetBurnFast"]["expr"]
    # Multi-window: a long and a short window per burn rate, against a 0.1% budget.
    assert "rate1h" in fast and "rate5m" in fast and "rate6h" in fast and "rate30m" in fast
    assert "0.001" in fast
    assert "gateway_circuit_open" in alerts["GatewayUpstreamUnavailable"]["expr"]
    assert "gateway_credentials_rejected" in alerts["GatewayTenantReauthRequired"]["expr"]
    assert "up{" in alerts["GatewayReadinessFlapping"]["expr"]
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_prometheus_rule_is_the_rules_file_verbatim(all_on):
    rule = all_on.one("PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())


def test_service_monitor_scrapes_the_metrics_port_as_the_job_the_rules_expect(all_on):
    monitor = all_on.one("ServiceMonitor")
    service = all_on.one("Service")
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    # The job label takes the value of this Service label: the job name the alert rules use.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "intercom-mcp-gateway"
    assert 'job="intercom-mcp-gateway"' in ALERTS.read_text()
    assert all(service["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package `prometheus`)")
def test_promtool_accepts_the_rules_and_their_unit_tests():
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(chartkit.HERE / "alerts_test.yaml")]):
        result = subprocess.run(["promtool", *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
