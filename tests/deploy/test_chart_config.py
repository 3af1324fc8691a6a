"""Settings reach the gateway under the environment names PRODUCT.md defines."""

from __future__ import annotations

import re
from pathlib import Path

import chartkit
from conftest import gateway_container

# PRODUCT.md "Configuration" (secrets excluded: they come from the Secret) and the standard OTel names.
CONTRACT_ENV = {
    "GATEWAY_LISTEN", "GATEWAY_METRICS_LISTEN", "GATEWAY_JWT_JWKS_URL", "GATEWAY_JWT_ISSUER",
    "GATEWAY_JWT_AUDIENCE", "GATEWAY_TENANT_CLAIM", "INTERCOM_MCP_URL", "INTERCOM_MCP_URL_EU",
    "INTERCOM_OAUTH_CLIENT_ID", "INTERCOM_OAUTH_AUTHORIZE_URL", "INTERCOM_OAUTH_TOKEN_URL",
    "INTERCOM_API_URL", "GATEWAY_PUBLIC_URL", "GATEWAY_POOL_MAX_SESSIONS", "GATEWAY_POOL_IDLE_TIMEOUT",
    "GATEWAY_UPSTREAM_TIMEOUT", "GATEWAY_UPSTREAM_PROTOCOL", "GATEWAY_DEFAULT_RATE_PER_MINUTE", "GATEWAY_DEFAULT_BURST",
    "GATEWAY_MAX_BODY_BYTES", "GATEWAY_LOG_FORMAT", "RUST_LOG", "GATEWAY_METRICS_TENANT_LABEL",
    "GATEWAY_SHUTDOWN_TIMEOUT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
}

ROOT = Path(__file__).resolve().parents[2]


def documented_env() -> set[str]:
    """The variables README.md's configuration table documents (PRODUCT.md's and our additions)."""
    names: set[str] = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_configmap_uses_only_documented_variable_names(rendered):
    data = rendered.one("ConfigMap", "gateway")["data"]
    assert set(data) <= CONTRACT_ENV | documented_env(), set(data) - CONTRACT_ENV - documented_env()


def test_every_gateway_setting_can_be_set_from_values(rendered):
    """Each documented non-secret setting has a chart value (secrets come from the Secret)."""
    data = rendered.one("ConfigMap", "gateway")["data"]
    secret_or_optional = {
        "DATABASE_URL", "GATEWAY_JWT_HS256_SECRET", "GATEWAY_ENCRYPTION_KEYS",
        "INTERCOM_OAUTH_CLIENT_SECRET", "GATEWAY_JWT_JWKS_URL", "GATEWAY_JWT_ISSUER",
        "GATEWAY_JWT_AUDIENCE", "GATEWAY_PUBLIC_URL", "GATEWAY_OAUTH_SUCCESS_REDIRECT",
        "INTERCOM_OAUTH_CLIENT_ID", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
    }
    missing = {n for n in documented_env() if n.startswith(("GATEWAY_", "INTERCOM_"))}
    missing -= set(data) | secret_or_optional
    assert not missing, f"README documents settings the chart cannot set: {sorted(missing)}"


def test_all_on_values_reach_the_configmap(all_on, all_on_values):
    data = all_on.one("ConfigMap", "gateway")["data"]
    config = all_on_values["config"]
    assert data["GATEWAY_JWT_JWKS_URL"] == config["jwt"]["jwksUrl"]
    assert data["GATEWAY_JWT_AUDIENCE"] == config["jwt"]["audience"]
    assert data["INTERCOM_OAUTH_CLIENT_ID"] == config["intercom"]["oauth"]["clientId"]
    assert data["GATEWAY_PUBLIC_URL"] == config["publicUrl"]
    assert data["GATEWAY_METRICS_TENANT_LABEL"] == "false"
    assert data["GATEWAY_UPSTREAM_PROTOCOL"] == config["upstreamProtocol"] == "stateless"
    assert data["GATEWAY_SHUTDOWN_TIMEOUT"] == f"{config['shutdownTimeoutSeconds']}s"
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == all_on_values["otel"]["endpoint"]


def test_empty_settings_are_left_out_so_the_gateway_defaults_apply(default):
    data = default.one("ConfigMap", "gateway")["data"]
    for name in ("GATEWAY_JWT_JWKS_URL", "GATEWAY_JWT_ISSUER", "GATEWAY_PUBLIC_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        assert name not in data
    assert all(value != "" for value in data.values())


def test_large_numbers_render_as_integers_not_floats():
    rendered = chartkit.render({"config": {"defaultRatePerMinute": 1000000, "maxBodyBytes": 10485760}})
    data = rendered.one("ConfigMap", "gateway")["data"]
    assert data["GATEWAY_DEFAULT_RATE_PER_MINUTE"] == "1000000"
    assert data["GATEWAY_MAX_BODY_BYTES"] == "10485760"


def test_pods_get_the_configmap_and_their_identity_as_otel_resource_attributes(all_on, all_on_values):
    c = gateway_container(all_on)
    assert {"configMapRef": {"name": all_on.one("ConfigMap", "gateway")["metadata"]["name"]}} in c["envFrom"]
    env = {e["name"]: e for e in c["env"]}
    attributes = env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert "k8s.pod.name=$(POD_NAME)" in attributes
    assert attributes.endswith("," + all_on_values["otel"]["resourceAttributes"])
    names = [e["name"] for e in c["env"]]
    assert names.index("POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")  # $(VAR) needs order
    assert {"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"} <= set(env)  # extraEnv
