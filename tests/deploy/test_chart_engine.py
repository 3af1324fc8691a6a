"""The chart passes `helm lint --strict`, its schema, and the Kubernetes API schemas."""

from __future__ import annotations

import copy

import helm_python
import pytest

import chartkit


@pytest.mark.parametrize("values_file", [None, chartkit.ALL_ON_VALUES], ids=["default", "all-on"])
def test_chart_lints_clean_in_strict_mode(values_file):
    values = chartkit.load_values(values_file) if values_file else {}
    assert chartkit.lint(values) == []


def test_every_rendered_object_is_valid_for_supported_kubernetes_versions(rendered):
    assert chartkit.validate_all(rendered) == []


def test_all_on_values_switch_every_optional_object_on(all_on):
    kinds = {m.kind for m in all_on.manifests}
    assert {
        "Deployment", "Service", "ServiceAccount", "ConfigMap", "Secret", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule", "NetworkPolicy", "Ingress", "Job",
    } <= kinds
    assert any(m.name.endswith("-dashboard") for m in all_on.manifests if m.kind == "ConfigMap")


def test_default_values_render_no_object_that_needs_a_crd_or_an_ingress_controller(default):
    kinds = {m.kind for m in default.manifests}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "Ingress", "NetworkPolicy", "HorizontalPodAutoscaler"}


@pytest.mark.parametrize(
    "override",
    [
        {"replicaCount": "three"},
        {"unknownTopLevelKey": True},
        {"config": {"logFormat": "xml"}},
        {"config": {"pool": {"maxSessions": 0}}},
        {"config": {"upstreamTimeout": "soon"}},
        {"config": {"upstreamProtocol": "sessionless"}},
        {"secrets": {"jwtHs256Secret": "too-short"}},
        {"secrets": {"encryptionKeys": "no-kid-separator"}},
        {"image": {"pullPolicy": "Sometimes"}},
    ],
    ids=lambda o: str(o),
)
def test_schema_rejects_bad_values_before_anything_renders(override):
    with pytest.raises(helm_python.HelmValuesError):
        chartkit.render(override)


def test_a_grace_period_shorter_than_the_drain_refuses_to_render():
    with pytest.raises(helm_python.HelmError, match="terminationGracePeriodSeconds"):
        chartkit.render({"terminationGracePeriodSeconds": 20})


def test_strict_kubernetes_validation_catches_a_misspelled_field(all_on):
    deployment = copy.deepcopy(all_on.one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert "readinesProbe" in chartkit.validate(deployment, chartkit.KUBE_VERSIONS[0])


def test_crd_validation_catches_a_misspelled_servicemonitor_field(all_on):
    monitor = copy.deepcopy(all_on.one("ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "1m"
    assert "intervall" in chartkit.validate(monitor, chartkit.KUBE_VERSIONS[0])
