"""The simulated helm keeps, drops and computes values as the real helm does: ``helm upgrade`` with
``--values`` alone, ``--reuse-values``, ``--reset-then-reuse-values``, ``--reset-values`` or no values
at all, and ``helm get values [--all]``. The rules are Helm's own (helm/helm v4.2.4,
pkg/action/upgrade.go ``reuseValues``, pkg/chart/common/util/coalesce.go, pkg/cmd/get_values.go),
implemented once in gpuwizard/helm_values.py."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from gpuwizard import helm_values as H
from gpuwizard.simulate import Sandbox, prepare

CTX = ("--kube-context", "kind-gpu-cluster")


def helm(sb: Sandbox, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["helm", *args, *CTX], env={**os.environ, **sb.env()}, capture_output=True, text=True,
                          timeout=30)


def values(sb: Sandbox, *extra: str) -> dict:
    r = helm(sb, "get", "values", "hami", "-n", "kube-system", "-o", "json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) or {}


def upgrade(sb: Sandbox, tmp_path, vals: dict | None, *flags: str, version: str = "2.4.1") -> None:
    args = ["upgrade", "hami", "hami-charts/hami", "--namespace", "kube-system", "--version", version, *flags]
    if vals is not None:
        f = sb.host_path("/tmp/v.yaml")  # a path inside the simulated host, as the wizard passes them
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(yaml.safe_dump(vals))
        args += ["--values", str(f)]
    r = helm(sb, *args)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def ready(tmp_path) -> Sandbox:
    sb = prepare("ready", tmp_path / "sb")  # hami 2.4.1 installed with scheduler.kubeScheduler.imageTag=v1.31.2
    assert values(sb) == {"scheduler": {"kubeScheduler": {"imageTag": "v1.31.2"}}}
    return sb


SPLIT4 = {"devicePlugin": {"deviceSplitCount": 4}}


def test_values_alone_drop_the_release_s_other_values(ready, tmp_path):
    upgrade(ready, tmp_path, SPLIT4)
    assert values(ready) == SPLIT4  # imageTag is gone: chart defaults + the file


def test_reset_then_reuse_keeps_them_over_the_new_chart(ready, tmp_path):
    upgrade(ready, tmp_path, SPLIT4, "--reset-then-reuse-values", version="2.10.0")
    assert values(ready) == {"scheduler": {"kubeScheduler": {"imageTag": "v1.31.2"}}, "devicePlugin": {"deviceSplitCount": 4}}
    computed = values(ready, "--all")
    assert computed["devicePlugin"]["gpuOperatorToolkitReady"]["enabled"] is False  # 2.10.0's own default
    assert computed["scheduler"]["kubeScheduler"]["image"]["registry"] == "registry.cn-hangzhou.aliyuncs.com"


def test_reuse_keeps_the_old_chart_s_computed_values(ready, tmp_path):
    upgrade(ready, tmp_path, SPLIT4, "--reuse-values", version="2.10.0")
    assert values(ready) == {"scheduler": {"kubeScheduler": {"imageTag": "v1.31.2"}}, "devicePlugin": {"deviceSplitCount": 4}}
    computed = values(ready, "--all")
    assert "gpuOperatorToolkitReady" not in computed["devicePlugin"]  # 2.10.0's new key has no default then
    assert computed["devicePlugin"]["nvidianodeSelector"] == {"gpu": "on"}  # 2.4.1's spelling lives on


def test_no_values_keep_them_and_reset_drops_them(ready, tmp_path):
    upgrade(ready, tmp_path, None)
    assert values(ready) == {"scheduler": {"kubeScheduler": {"imageTag": "v1.31.2"}}}
    upgrade(ready, tmp_path, None, "--reset-values")
    assert values(ready) == {}


def test_get_values_table_forms_are_headed_as_helm_heads_them(ready):
    assert helm(ready, "get", "values", "hami", "-n", "kube-system").stdout.startswith("USER-SUPPLIED VALUES:\n")
    assert helm(ready, "get", "values", "hami", "-n", "kube-system", "-a").stdout.startswith("COMPUTED VALUES:\n")


def test_null_deletes_a_default_and_a_null_over_nothing_stays():
    defaults = {"dp": {"sel": {"gpu": "on"}}}
    assert H.coalesce({"dp": {"sel": {"gpu": None, "w": "hami"}}}, defaults) == {"dp": {"sel": {"w": "hami"}}}
    assert H.coalesce({"x": None}, defaults) == {"x": None, "dp": {"sel": {"gpu": "on"}}}
    # CoalesceTables(dst, src): dst wins, src fills; a dst null over a src value deletes the key
    assert H.coalesce_tables({"a": {"b": 1, "c": None}}, {"a": {"c": 3, "d": 4}, "e": 5}) == {"a": {"b": 1, "d": 4}, "e": 5}


def test_an_adopted_release_keeps_its_own_values_and_the_wizard_replaces_what_it_manages():
    from gpuwizard.steps import kube as K

    cv = K.chart_version("hami", "2.10.0")
    live = {"devicePlugin": {"nvidiaNodeSelector": {"old": "label"}, "deviceSplitCount": 4},
            "scheduler": {"defaultSchedulerPolicy": {"gpuSchedulerPolicy": "spread"}, "kubeScheduler": {"imageTag": "v1"}}}
    wanted = K.Explained()
    wanted.set("devicePlugin.nvidiaNodeSelector", {"gpu": None, "w": "hami"}, "hami.node_label")
    managed = ["devicePlugin.nvidiaNodeSelector", "devicePlugin.deviceSplitCount"]
    got = K.adopt_values(live, wanted, managed, cv, same_chart=False)
    # the selector map replaced, not merged; split count back to the chart's default; a key 2.10.0 lacks dropped
    assert got.values == {"devicePlugin": {"nvidiaNodeSelector": {"gpu": None, "w": "hami"}},
                          "scheduler": {"defaultSchedulerPolicy": {"gpuSchedulerPolicy": "spread"}}}
    assert got.dropped == {"devicePlugin.deviceSplitCount": 4, "scheduler.kubeScheduler.imageTag": "v1"}
    assert got.kept == ["scheduler.defaultSchedulerPolicy.gpuSchedulerPolicy"]
    assert got.notes["scheduler.defaultSchedulerPolicy.gpuSchedulerPolicy"].startswith("kept from the installed release")


def test_a_value_of_the_wrong_kind_gets_helm_s_warning_on_upgrade(ready, tmp_path):
    # ../shared/upstream/README.md: image.tag on 2.4.1/2.6.1, where scheduler.kubeScheduler.image is a string
    args = ["upgrade", "hami", "hami-charts/hami", "--namespace", "kube-system", "--version", "2.6.1", "--values"]
    f = ready.host_path("/tmp/v.yaml")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(yaml.safe_dump({"scheduler": {"kubeScheduler": {"image": {"tag": "v1.31.2"}}}}))
    r = helm(ready, *args, str(f))
    assert r.returncode == 0
    assert r.stderr.startswith("coalesce.go:289: warning: destination for hami.scheduler.kubeScheduler.image is a "
                               "table. Ignoring non-table value (registry.cn-hangzhou.aliyuncs.com/google_containers/"
                               "kube-scheduler)")  # helm v3.16.2, the ready host's (Lshortfile)


def test_helm_3_keeps_the_chart_s_null_defaults_and_helm_4_drops_them():
    # pkg/chartutil/coalesce.go at v3.16.2 has no cleanNilValues; pkg/chart/common/util/coalesce.go at v4.2.4 has
    defaults = {"dp": {"root": None, "split": 10}, "top": None}
    assert H.coalesce({}, defaults) == {"dp": {"split": 10}}
    assert H.coalesce({}, defaults, helm3=True) == {"dp": {"root": None, "split": 10}, "top": None}
    assert H.coalesce({"dp": {"split": None}}, defaults, helm3=True) == {"dp": {"root": None}, "top": None}
    # the plan's diff sees no change between the two
    assert H.diff(H.coalesce({}, defaults, helm3=True), H.coalesce({}, defaults)) == []
