"""Secrets reach the pods only through Secrets; ConfigMaps and NOTES never hold them."""

from __future__ import annotations

import base64

import chartkit
from conftest import gateway_container

SECRET_ENV = {"DATABASE_URL", "GATEWAY_JWT_HS256_SECRET", "GATEWAY_ENCRYPTION_KEYS", "INTERCOM_OAUTH_CLIENT_SECRET"}
SECRET_VALUES = ("databaseUrl", "jwtHs256Secret", "encryptionKeys", "intercomOAuthClientSecret")


def test_configmaps_hold_no_secret_variables_or_values(all_on, all_on_values):
    secrets = [all_on_values["secrets"][k] for k in SECRET_VALUES]
    for cm in all_on.of_kind("ConfigMap"):
        data = cm.get("data", {})
        assert not SECRET_ENV & set(data), cm["metadata"]["name"]
        for value in data.values():
            for secret in secrets:
                assert secret not in value, f"a secret value leaked into ConfigMap {cm['metadata']['name']}"


def test_secret_values_appear_only_in_secrets_and_never_in_notes(all_on, all_on_values):
    for key in SECRET_VALUES:
        secret = all_on_values["secrets"][key]
        for m in all_on.manifests:
            if m.kind != "Secret":
                assert secret not in str(m.obj), f"{key} found in {m.kind}/{m.name}"
        assert secret not in all_on.notes


def test_chart_secret_carries_every_inline_secret_under_its_env_name(all_on, all_on_values):
    secret = next(s for s in all_on.of_kind("Secret") if "helm.sh/hook" not in s["metadata"].get("annotations", {}))
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "DATABASE_URL": all_on_values["secrets"]["databaseUrl"],
        "GATEWAY_JWT_HS256_SECRET": all_on_values["secrets"]["jwtHs256Secret"],
        "GATEWAY_ENCRYPTION_KEYS": all_on_values["secrets"]["encryptionKeys"],
        "INTERCOM_OAUTH_CLIENT_SECRET": all_on_values["secrets"]["intercomOAuthClientSecret"],
    }


def test_secret_env_comes_from_secret_key_refs_with_only_required_ones_mandatory(rendered):
    env = {e["name"]: e for e in gateway_container(rendered)["env"]}
    secret_name = next(
        s["metadata"]["name"] for s in rendered.of_kind("Secret") if "helm.sh/hook" not in s["metadata"].get("annotations", {})
    )
    for name in SECRET_ENV:
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret_name
        assert ref["key"] == name
    assert not env["DATABASE_URL"]["valueFrom"]["secretKeyRef"].get("optional")
    assert not env["GATEWAY_ENCRYPTION_KEYS"]["valueFrom"]["secretKeyRef"].get("optional")
    assert env["GATEWAY_JWT_HS256_SECRET"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["INTERCOM_OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_existing_secret_replaces_the_charts_secret_with_custom_key_names():
    rendered = chartkit.render(
        {
            "secrets": {
                "existingSecret": "gateway-from-vault",
                "databaseUrl": "postgres://ignored:ignored@db/ignored",
                "keys": {
                    "databaseUrl": "db-url",
                    "jwtHs256Secret": "jwt",
                    "encryptionKeys": "sealing-keys",
                    "intercomOAuthClientSecret": "oauth",
                },
            }
        }
    )
    assert rendered.of_kind("Secret") == []
    env = {e["name"]: e for e in gateway_container(rendered)["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "gateway-from-vault", "key": "db-url"}
    assert env["GATEWAY_ENCRYPTION_KEYS"]["valueFrom"]["secretKeyRef"]["key"] == "sealing-keys"
    job_env = rendered.one("Job")["spec"]["template"]["spec"]["containers"][0]["env"]
    db = next(e for e in job_env if e["name"] == "DATABASE_URL")
    assert db["valueFrom"]["secretKeyRef"] == {"name": "gateway-from-vault", "key": "db-url"}
    assert "ignored" not in rendered.to_yaml()


def test_a_secret_change_rolls_the_pods():
    before = chartkit.render({"secrets": {"encryptionKeys": "k1:" + "A" * 43 + "="}})
    after = chartkit.render({"secrets": {"encryptionKeys": "k2:" + "B" * 43 + "=,k1:" + "A" * 43 + "="}})
    annotations = lambda r: r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]  # noqa: E731
    assert annotations(before)["checksum/secret"] != annotations(after)["checksum/secret"]
    assert annotations(before)["checksum/config"] == annotations(after)["checksum/config"]


def test_notes_warn_when_the_required_secrets_are_missing(default, all_on):
    assert "secrets.databaseUrl" in default.notes
    assert "secrets.encryptionKeys" in default.notes
    assert "WARNING" not in all_on.notes
