"""Lint, render and validate helm/intercom-mcp-gateway with the real Helm engine.

There is no `helm` binary here: `helm-python-sdk` (import name `helm_python`) binds Helm v4's Go
SDK through ctypes, so `lint` and `render` below are what `helm lint` and `helm template` do.
Rendered objects are checked against the Kubernetes OpenAPI schemas that `kubernetes-validate`
ships inside its wheel (offline), in strict mode (unknown fields are errors). The Prometheus
Operator kinds have no schema there; they are checked against the structural schemas in
crd-schemas/, written from the operator's CRDs.

Used by the pytest suite in this folder and by .ci/deploy-check:

    python tests/deploy/chartkit.py [--out DIR]    # lint + render + validate both value sets
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import yaml
from kubernetes_validate import utils as kube_validate

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHART_DIR = REPO / "helm" / "intercom-mcp-gateway"
ALL_ON_VALUES = CHART_DIR / "ci" / "all-on-values.yaml"
CRD_SCHEMAS = HERE / "crd-schemas"

RELEASE = "imgw"
NAMESPACE = "gateway"
# The chart's kubeVersion floor and the newest schema set kubernetes-validate bundles.
KUBE_VERSIONS = ("1.30.0", "1.37.0")
# Custom resources validated against crd-schemas/<kind>.json instead of Kubernetes' schemas.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
}
LINT_ERROR = 2  # helm lint severities: 1 info, 2 warning, 3 error; warnings fail (strict).


@dataclass(frozen=True)
class Manifest:
    source: str  # template path, e.g. intercom-mcp-gateway/templates/deployment.yaml
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]


@dataclass(frozen=True)
class Rendered:
    manifests: list[Manifest]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m.obj for m in self.manifests if m.kind == kind]

    def one(self, kind: str, component: str | None = None) -> dict[str, Any]:
        found = [
            o
            for o in self.of_kind(kind)
            if component is None
            or o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {kind} ({component}), found {len(found)}"
        return found[0]

    def to_yaml(self) -> str:
        return "".join(
            f"---\n# Source: {m.source}\n{yaml.safe_dump(m.obj, sort_keys=False)}"
            for m in self.manifests
        )


def load_values(path: Path = ALL_ON_VALUES) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def render(
    values: dict[str, Any] | None = None,
    *,
    name: str = RELEASE,
    namespace: str = NAMESPACE,
    upgrade: bool = False,
) -> Rendered:
    """`helm template` with the values validated against values.schema.json first, as
    `helm install` does (the SDK's render alone skips the schema)."""
    values = values or {}
    with helm_python.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(values)
        files = chart.render(
            values,
            name=name,
            namespace=namespace,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )
    manifests: list[Manifest] = []
    notes = ""
    for source in sorted(files):
        text = files[source]
        if source.endswith("NOTES.txt"):
            notes = text
            continue
        for obj in yaml.safe_load_all(text):
            if obj:
                manifests.append(Manifest(source, obj))
    return Rendered(manifests, notes)


def lint(values: dict[str, Any] | None = None, kube_version: str = KUBE_VERSIONS[0]) -> list[str]:
    """`helm lint --strict`; returns the findings at warning level or above."""
    report = helm_python.lint(CHART_DIR, values or {}, strict=True, kube_version=f"v{kube_version}")
    problems = [
        f"{m['path']}: {m['error']}" for m in report.get("messages", []) if m["severity"] >= LINT_ERROR
    ]
    return problems + list(report.get("errors") or [])


def _crd_schema(filename: str) -> dict[str, Any]:
    return json.loads((CRD_SCHEMAS / filename).read_text())


def validate(obj: dict[str, Any], kube_version: str) -> str | None:
    """The validation error of one object, or None when it is valid."""
    crd = CRD_KINDS.get((obj.get("apiVersion"), obj.get("kind")))
    try:
        if crd:
            jsonschema.Draft7Validator(_crd_schema(crd)).validate(obj)
        else:
            kube_validate.validate(obj, kube_version, strict=True)
    except jsonschema.ValidationError as e:
        path = ".".join(str(p) for p in e.absolute_path)
        return f"{path}: {e.message}"
    except kube_validate.SchemaNotFoundError as e:
        return e.message
    return None


def validate_all(rendered: Rendered, kube_versions: tuple[str, ...] = KUBE_VERSIONS) -> list[str]:
    errors = []
    for m in rendered.manifests:
        for version in kube_versions:
            error = validate(m.obj, version)
            if error:
                errors.append(f"{m.kind}/{m.name} ({m.source}) vs Kubernetes {version}: {error}")
    return errors


VALUE_SETS = {"default values": None, "ci/all-on-values.yaml": ALL_ON_VALUES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the rendered manifests here")
    args = parser.parse_args()

    print(f"helm SDK {helm_python.helm_sdk_version()} (helm-python-sdk {helm_python.__version__})")
    failed = False
    for label, path in VALUE_SETS.items():
        values = load_values(path) if path else {}
        problems = lint(values)
        for p in problems:
            print(f"  lint [{label}] {p}")
        try:
            rendered = render(values)
        except helm_python.HelmError as e:
            print(f"FAIL render [{label}]: {e}")
            failed = True
            continue
        errors = validate_all(rendered)
        for e in errors:
            print(f"  invalid [{label}] {e}")
        kinds = sorted({m.kind for m in rendered.manifests})
        status = "FAIL" if problems or errors else "ok"
        print(
            f"{status:4} {label}: lint {len(problems)} problem(s); {len(rendered.manifests)} objects "
            f"({', '.join(kinds)}) valid against Kubernetes {' and '.join(KUBE_VERSIONS)}"
            if not errors
            else f"{status:4} {label}: {len(errors)} invalid object(s), lint {len(problems)} problem(s)"
        )
        failed |= bool(problems or errors)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            out = args.out / (Path(path).stem if path else "default-values")
            out.with_suffix(".yaml").write_text(rendered.to_yaml())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
