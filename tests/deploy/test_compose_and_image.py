"""docker-compose.yml and the Dockerfile keep the contract the README's quick start relies on."""

from __future__ import annotations

import re

import yaml

import chartkit

REPO = chartkit.REPO
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _mounts(service: str) -> dict[str, str]:
    """host path -> container path of a service's bind mounts."""
    out = {}
    for v in SERVICES[service].get("volumes", []):
        host, container = v.split(":")[:2]
        if host.startswith("./"):
            out[host[2:]] = container
    return out


def test_compose_runs_the_whole_stack():
    assert {"postgres", "gateway", "fake-intercom", "prometheus", "grafana", "otel-collector", "jaeger"} <= set(SERVICES)


def test_gateway_starts_after_a_healthy_postgres_and_reports_its_own_readiness():
    gateway = SERVICES["gateway"]
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert {"fake-intercom", "otel-collector"} <= set(gateway["depends_on"])
    assert "/readyz" in " ".join(gateway["healthcheck"]["test"])
    assert SERVICES["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert gateway["depends_on"]["fake-intercom"]["condition"] == "service_healthy"
    for name in ("postgres", "gateway", "fake-intercom", "prometheus", "grafana", "jaeger"):
        assert "healthcheck" in SERVICES[name], name


def test_gateway_env_points_at_the_fake_intercom_and_the_collector():
    env = SERVICES["gateway"]["environment"]
    assert env["INTERCOM_MCP_URL"] == "http://fake-intercom:8090/mcp"
    # Nothing may reach the real Intercom from the demo stack.
    for name in ("INTERCOM_MCP_URL_EU", "INTERCOM_API_URL", "INTERCOM_OAUTH_TOKEN_URL", "INTERCOM_OAUTH_AUTHORIZE_URL"):
        assert "intercom.io" not in env[name] and "intercom.com" not in env[name], name
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["GATEWAY_METRICS_LISTEN"].endswith(":9090")
    assert re.fullmatch(r"[^:,]+:[A-Za-z0-9+/]{43}=", env["GATEWAY_ENCRYPTION_KEYS"])
    assert len(env["GATEWAY_JWT_HS256_SECRET"]) >= 32
    assert "dev" in env["GATEWAY_JWT_HS256_SECRET"] and "dev" in env["DATABASE_URL"]
    fake = SERVICES["fake-intercom"]["environment"]
    assert fake["FAKE_INTERCOM_LISTEN"].endswith(":8090")


def test_compose_drain_window_outlasts_the_gateway_shutdown_timeout():
    grace = SERVICES["gateway"]["stop_grace_period"]
    timeout = SERVICES["gateway"]["environment"]["GATEWAY_SHUTDOWN_TIMEOUT"]
    assert int(grace.rstrip("s")) > int(timeout.rstrip("s"))


def test_prometheus_and_grafana_mount_the_charts_files_not_copies():
    assert _mounts("prometheus")["helm/intercom-mcp-gateway/files/alerts.yaml"].startswith("/etc/prometheus/rules/")
    assert "helm/intercom-mcp-gateway/files/dashboard.json" in _mounts("grafana")
    copies = [p for p in (REPO / "ops").rglob("*") if p.suffix == ".json" or p.name.startswith("alerts")]
    assert copies == [], f"second copies of the dashboard or rules: {copies}"


def test_prometheus_scrapes_the_gateway_as_the_job_the_rules_expect():
    config = yaml.safe_load((REPO / "ops/prometheus/prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "intercom-mcp-gateway")
    assert job["static_configs"][0]["targets"] == ["gateway:9090"]
    assert any(f.startswith("/etc/prometheus/rules/") for f in config["rule_files"])


def test_collector_forwards_otlp_traces_to_jaeger():
    config = yaml.safe_load((REPO / "ops/otel-collector/config.yaml").read_text())
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert config["exporters"][traces["exporters"][0]]["endpoint"] == "jaeger:4317"


def test_grafana_provisions_prometheus_and_jaeger_and_loads_the_dashboard_folder():
    ds = yaml.safe_load((REPO / "ops/grafana/provisioning/datasources/datasources.yaml").read_text())
    assert {d["type"] for d in ds["datasources"]} == {"prometheus", "jaeger"}
    providers = yaml.safe_load((REPO / "ops/grafana/provisioning/dashboards/dashboards.yaml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert _mounts("grafana")["helm/intercom-mcp-gateway/files/dashboard.json"].startswith(path + "/")


def test_image_is_multi_stage_distroless_non_root_with_both_binaries():
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", DOCKERFILE, re.M)
    assert len(stages) >= 3
    assert "ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot" in DOCKERFILE
    assert stages[-1] == ("base", "runtime"), "the default (last) target must be the production image"
    assert "cargo build --release --locked --bins" in DOCKERFILE
    assert "SQLX_OFFLINE=true" in DOCKERFILE
    assert re.search(r"^USER 65532:65532$", DOCKERFILE, re.M)
    assert "/out/intercom-mcp-gateway /out/fake-intercom /usr/local/bin/" in DOCKERFILE
    assert 'ENTRYPOINT ["/usr/local/bin/intercom-mcp-gateway"]' in DOCKERFILE
    for label in ("title", "version", "revision", "source", "licenses", "created"):
        assert f"org.opencontainers.image.{label}=" in DOCKERFILE


def test_production_image_gets_no_shell_tools():
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    base = DOCKERFILE.split("AS base", 1)[1].split("FROM", 1)[0]
    assert "wget" not in runtime and "busybox" not in base
    assert SERVICES["gateway"]["build"]["target"] == "compose"


def test_dockerignore_keeps_the_crate_and_drops_the_rest():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {"target", ".git", "helm"} <= ignored
    for needed in ("src", "Cargo.toml", "Cargo.lock", "migrations", ".sqlx"):
        assert needed not in ignored
