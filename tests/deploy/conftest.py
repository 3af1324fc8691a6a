"""Fixtures: the chart rendered by the real Helm engine (see chartkit.py)."""

from __future__ import annotations

import pytest

import chartkit


@pytest.fixture(scope="session")
def all_on_values() -> dict:
    return chartkit.load_values(chartkit.ALL_ON_VALUES)


@pytest.fixture(scope="session")
def default() -> chartkit.Rendered:
    return chartkit.render({})


@pytest.fixture(scope="session")
def all_on(all_on_values) -> chartkit.Rendered:
    return chartkit.render(all_on_values)


@pytest.fixture(scope="session", params=["default", "all_on"])
def rendered(request, default, all_on) -> chartkit.Rendered:
    """Both value sets, for the properties that must hold whatever is switched on."""
    return {"default": default, "all_on": all_on}[request.param]


def pod_specs(rendered: chartkit.Rendered) -> list[tuple[str, dict]]:
    """(kind/name, pod spec) of every workload."""
    return [
        (f"{m.kind}/{m.name}", m.obj["spec"]["template"]["spec"])
        for m in rendered.manifests
        if m.kind in ("Deployment", "Job")
    ]


def gateway_container(rendered: chartkit.Rendered) -> dict:
    containers = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "gateway")
