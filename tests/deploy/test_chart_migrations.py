"""Database migrations run as a pre-install/pre-upgrade hook Job (optional, default on)."""

from __future__ import annotations

import base64

import chartkit

HOOK = "helm.sh/hook"


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook_running_migrate(default):
    job = default.one("Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations[HOOK].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["args"] == ["migrate"]
    assert job["spec"]["backoffLimit"] >= 0 and job["spec"]["activeDeadlineSeconds"] > 0


def test_migration_job_reads_a_hook_secret_created_before_it(all_on, all_on_values):
    job = all_on.one("Job")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    hook_secret = next(s for s in all_on.of_kind("Secret") if s["metadata"]["name"] == ref["name"])
    # On first install the release's own Secret does not exist yet when pre-install hooks run.
    assert "pre-install" in hook_secret["metadata"]["annotations"][HOOK]
    weight = lambda o: int(o["metadata"]["annotations"]["helm.sh/hook-weight"])  # noqa: E731
    assert weight(hook_secret) < weight(job)
    # It carries only the database URL.
    assert {k: base64.b64decode(v).decode() for k, v in hook_secret["data"].items()} == {
        "DATABASE_URL": all_on_values["secrets"]["databaseUrl"]
    }


def test_migration_job_does_not_depend_on_the_releases_service_account(default):
    pod = default.one("Job")["spec"]["template"]["spec"]
    assert "serviceAccountName" not in pod


def test_migrations_can_be_left_to_the_gateway_start_up():
    rendered = chartkit.render({"migrations": {"enabled": False}})
    assert rendered.of_kind("Job") == []
    assert all(HOOK not in s["metadata"].get("annotations", {}) for s in rendered.of_kind("Secret"))
