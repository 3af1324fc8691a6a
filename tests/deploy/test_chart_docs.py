"""The chart README documents every value, and only values that exist."""

from __future__ import annotations

import re

import helm_python

import chartkit

README = (chartkit.CHART_DIR / "README.md").read_text()
# Objects passed to Kubernetes as a whole: documented as one row each.
OPAQUE = {
    "resources", "podSecurityContext", "securityContext", "updateStrategy", "autoscaling.behavior",
    "migrations.resources", "probes.startup", "probes.liveness", "probes.readiness",
}


def _leaf_paths(values: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in OPAQUE and not key.endswith(("labels", "annotations")):
            paths += _leaf_paths(value, path + ".")
        else:
            paths.append(path)
    return paths


def _chart_values() -> dict:
    with helm_python.Chart.load(chartkit.CHART_DIR) as chart:
        return chart.values


def test_every_value_is_documented_in_the_chart_readme():
    missing = [p for p in _leaf_paths(_chart_values()) if f"| `{p}` |" not in README]
    assert missing == [], f"undocumented values: {missing}"


def test_every_documented_value_exists():
    known = set(_leaf_paths(_chart_values()))
    rows = re.findall(r"^\| `([a-z][a-zA-Z0-9_.]*)` \|", README, re.M)  # env vars are upper case
    assert rows
    stale = [r for r in rows if r not in known]
    assert stale == [], f"README documents values that do not exist: {stale}"
