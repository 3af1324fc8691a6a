"""The gateway Deployment: probes, hardening, drain, spread, scaling, disruption budget."""

from __future__ import annotations

import re

import chartkit
from conftest import gateway_container, pod_specs


def _selector_matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_probes_hit_healthz_for_liveness_and_startup_and_readyz_for_readiness(rendered):
    c = gateway_container(rendered)
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Start-up may include migrations: the startup probe must allow for minutes, not seconds.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_container_ports_match_the_listen_addresses_in_the_configmap(rendered):
    ports = {p["name"]: p["containerPort"] for p in gateway_container(rendered)["ports"]}
    config = rendered.one("ConfigMap", "gateway")["data"]
    assert config["GATEWAY_LISTEN"] == f"0.0.0.0:{ports['http']}"
    assert config["GATEWAY_METRICS_LISTEN"] == f"0.0.0.0:{ports['metrics']}"


def test_every_pod_runs_non_root_read_only_without_capabilities_under_seccomp(rendered):
    for name, spec in pod_specs(rendered):
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] != 0, name
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc.get("privileged", False) is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert not sc["capabilities"].get("add"), name
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
            # A read-only root needs a writable /tmp.
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]), name


def test_resources_request_cpu_and_memory_and_limit_memory(rendered):
    for name, spec in pod_specs(rendered):
        for c in spec["containers"]:
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
            assert "memory" in c["resources"]["limits"], name


def _seconds(duration: str) -> int:
    m = re.fullmatch(r"(\d+)s", duration)
    assert m, f"GATEWAY_SHUTDOWN_TIMEOUT {duration!r} is not in seconds"
    return int(m.group(1))


def test_grace_period_outlasts_the_prestop_sleep_plus_the_drain(rendered):
    spec = rendered.one("Deployment")["spec"]["template"]["spec"]
    drain = _seconds(rendered.one("ConfigMap", "gateway")["data"]["GATEWAY_SHUTDOWN_TIMEOUT"])
    pre_stop = gateway_container(rendered)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain


def test_a_longer_drain_lengthens_the_grace_period():
    rendered = chartkit.render({"config": {"shutdownTimeoutSeconds": 90}})
    spec = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert rendered.one("ConfigMap", "gateway")["data"]["GATEWAY_SHUTDOWN_TIMEOUT"] == "90s"
    assert spec["terminationGracePeriodSeconds"] > 90 + 5


def test_pods_spread_over_zones_and_nodes_selecting_only_gateway_pods(rendered):
    deployment = rendered.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    constraints = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in constraints} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for c in constraints:
        assert _selector_matches(c["labelSelector"]["matchLabels"], pod_labels)
        assert c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"


def test_replicas_are_left_to_the_hpa_when_autoscaling_is_on(default, all_on):
    assert default.one("Deployment")["spec"]["replicas"] == 2
    assert "replicas" not in all_on.one("Deployment")["spec"]
    hpa = all_on.one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": all_on.one("Deployment")["metadata"]["name"],
    }
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert {m["resource"]["name"] for m in hpa["metrics"]} == {"cpu", "memory"}


def test_rolling_update_never_drops_below_the_desired_replicas(rendered):
    assert rendered.one("Deployment")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_disruption_budget_covers_exactly_the_gateway_pods(rendered):
    pdb = rendered.one("PodDisruptionBudget")["spec"]
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _selector_matches(pdb["selector"]["matchLabels"], pod_labels)
    job_labels = rendered.one("Job")["spec"]["template"]["metadata"]["labels"]
    assert not _selector_matches(pdb["selector"]["matchLabels"], job_labels)
    assert ("maxUnavailable" in pdb) != ("minAvailable" in pdb)


def test_default_disruption_budget_never_blocks_a_node_drain(default):
    assert default.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_min_available_is_below_the_minimum_replica_count(all_on, all_on_values):
    pdb = all_on.one("PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] < all_on_values["autoscaling"]["minReplicas"]


def test_service_exposes_http_and_metrics_and_selects_the_gateway_pods(rendered):
    service = rendered.one("Service")["spec"]
    assert {p["name"]: p["targetPort"] for p in service["ports"]} == {"http": "http", "metrics": "metrics"}
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _selector_matches(service["selector"], pod_labels)
    job_labels = rendered.one("Job")["spec"]["template"]["metadata"]["labels"]
    assert not _selector_matches(service["selector"], job_labels)


def test_pods_use_the_charts_service_account_without_a_token(rendered):
    spec = rendered.one("Deployment")["spec"]["template"]["spec"]
    account = rendered.one("ServiceAccount")
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False


def test_image_defaults_to_the_app_version_and_prefers_a_digest():
    digest = "sha256:" + "a" * 64
    rendered = chartkit.render({"image": {"repository": "r.example/gw", "digest": digest}})
    assert gateway_container(rendered)["image"] == f"r.example/gw@{digest}"
    job = rendered.one("Job")["spec"]["template"]["spec"]["containers"][0]
    assert job["image"] == f"r.example/gw@{digest}"


def test_ingress_routes_to_the_http_port(all_on):
    ingress = all_on.one("Ingress")["spec"]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": all_on.one("Service")["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["tls"]


def test_network_policy_admits_the_api_and_metrics_ports_and_limits_egress(all_on):
    policy = all_on.one("NetworkPolicy")["spec"]
    pod_labels = all_on.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _selector_matches(policy["podSelector"]["matchLabels"], pod_labels)
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports == {"http", "metrics"}
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule.get("ports", [])}
    assert {53, 5432, 443, 4318} <= egress_ports
