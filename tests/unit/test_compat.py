"""gpuwizard.compat and gpuwizard/assets/compat.yaml: what a user relies on when the wizard refuses
(or warns about) a combination of versions: the text names the versions, what is supported, the
table row and its source; every row has a source and a date."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpuwizard import compat as K
from gpuwizard import versions as V
from gpuwizard.steps import common as C

# gpuwizard.steps.common.CUDA_MIN_DRIVER as it was written in common.py before the table existed
# (copied from that file): the table must give exactly this.
CUDA_MIN_DRIVER_BEFORE = {
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.3": "545.23.06",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}

# the gpu-operator chart releases gpuwizard has key data for (gpuwizard/assets/charts/keys/)
KEYS = Path(K.__file__).parent / "assets" / "charts" / "keys"
KNOWN = sorted((p.stem.removeprefix("gpu-operator-") for p in KEYS.glob("gpu-operator-v*.json")), key=V.key)


def refusals(findings: list[K.Finding]) -> list[K.Finding]:
    return [f for f in findings if f.level == "refuse"]


# -- the table itself -----------------------------------------------------------------------------
def test_every_row_has_an_id_a_source_and_a_date() -> None:
    rows = K.table().rows()
    assert len(rows) > 30
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids)), "row ids are unique"
    for r in rows:
        assert re.fullmatch(r"[a-z-]+/[A-Za-z0-9.+-]+", r.id), r.id
        assert r.source.strip(), r.id
        assert r.source.startswith(("http", "unknown — ")) or " @ " in r.source, f"{r.id}: a URL or a repo path @ tag"
        assert r.seen.year >= 2026, r.id


def test_the_table_is_read_once() -> None:
    assert K.table() is K.table()


def test_driver_by_cuda_is_what_common_had_before() -> None:
    assert K.cuda_min_driver_table() == CUDA_MIN_DRIVER_BEFORE
    assert C.cuda_min_driver() == CUDA_MIN_DRIVER_BEFORE
    assert K.cuda_min_driver("12.6") == "560.28.03" and K.cuda_min_driver("12.6.2") == "560.28.03"
    assert K.cuda_min_driver("12.7") is None  # NVIDIA never shipped a 12.7 toolkit
    assert C.cuda_for_driver("565") == "12.6"  # behaviour of the users of the dict unchanged


def test_operator_rows_agree_with_the_life_cycle_row() -> None:
    life = K.table().operator_lifecycle
    for r in K.table().operator_kubernetes:
        eos = V.compare(r.line, life.end_of_support_through) <= 0
        assert (r.status == "end-of-support") == eos, r.id


def test_cdi_default_follows_the_charts() -> None:
    row = K.table().operator_cdi
    assert set(row.checked) == set(KNOWN)
    for tag, enabled in row.checked.items():
        assert K.operator_cdi_default(tag) is enabled, tag


@pytest.mark.parametrize("tag", KNOWN)
def test_cdi_default_matches_the_released_values_file(tag: str) -> None:
    values = Path(__file__).resolve().parents[2].parent / "shared/upstream/charts/gpu-operator" / tag / "values.yaml"
    if not values.exists():
        pytest.skip(f"{values} is not here")
    import yaml

    cdi = (yaml.safe_load(values.read_text()) or {}).get("cdi") or {}
    assert bool(cdi.get("enabled")) is K.operator_cdi_default(tag)


# -- gpu-operator x Kubernetes --------------------------------------------------------------------
def test_an_unsupported_kubernetes_is_refused_naming_the_row_and_source() -> None:
    out = K.operator_kubernetes("v25.10.0", "v1.36.1")
    [refused] = refusals(out)
    assert refused.row == "operator-kubernetes/v25.10"
    assert "gpu-operator v25.10.0 does not support Kubernetes 1.36" in refused.text
    assert "supported: 1.30–1.35" in refused.text
    assert "row operator-kubernetes/v25.10" in refused.text and refused.source in refused.text


def test_an_end_of_support_line_is_warned_about() -> None:
    out = K.operator_kubernetes("v25.10.1", "1.33")
    assert [f.level for f in out] == ["warn"]
    assert "end of support" in out[0].text and out[0].row == "operator-lifecycle/policy"
    assert out[0].source in out[0].text


@pytest.mark.parametrize("kube", ["v1.33.1", "1.36", "v1.34.2+k3s1", "1.32"])
def test_a_supported_line_on_a_supported_kubernetes_says_nothing(kube: str) -> None:
    assert K.operator_kubernetes("v26.3.3", kube) == []
    assert K.operator_kubernetes("v26.7.0", kube) == []


def test_a_minor_added_by_a_patch_release_is_refused_before_it() -> None:
    [refused] = K.operator_kubernetes("v26.3.1", "1.36")
    assert refused.level == "refuse" and "v26.3.2" in refused.text
    assert refusals(K.operator_kubernetes("v25.3.0", "1.33")) and not refusals(K.operator_kubernetes("v25.3.4", "1.33"))


def test_an_operator_line_without_a_row_is_warned_about() -> None:
    [w] = K.operator_kubernetes("v23.9.2", "1.29")
    assert w.level == "warn" and "not in gpuwizard's compatibility table" in w.text and "v23.9.2" in w.text


# -- gpu-operator upgrades ------------------------------------------------------------------------
def test_known_chart_releases() -> None:
    assert KNOWN == ["v24.9.2", "v25.3.4", "v25.10.0", "v25.10.1", "v26.3.3", "v26.7.0"]


def test_upgrade_path_goes_one_major_at_a_time() -> None:
    assert K.operator_upgrade_path("v25.10.0", "v26.7.0", KNOWN) == ["v26.3.3", "v26.7.0"]
    assert K.operator_upgrade_path("v26.3.3", "v26.7.0", KNOWN) == ["v26.7.0"]
    assert K.operator_upgrade_path("v24.9.2", "v26.7.0", KNOWN) == ["v25.3.4", "v25.10.1", "v26.3.3", "v26.7.0"]
    assert K.operator_upgrade_path("v25.10.0", "v25.10.1", KNOWN) == ["v25.10.1"]  # within a major
    assert K.operator_upgrade_path("v26.7.0", "v26.7.0", KNOWN) == []
    assert K.operator_upgrade_path("25.10.0", "26.3.3", KNOWN) == ["v26.3.3"]


def test_upgrade_path_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="downgrade"):
        K.operator_upgrade_path("v26.7.0", "v25.10.0", KNOWN)
    with pytest.raises(ValueError, match="v26.3 line.*operator-lifecycle/policy"):
        K.operator_upgrade_path("v25.10.0", "v26.7.0", ["v25.10.0", "v26.7.0"])
    with pytest.raises(ValueError, match="older than the release lines"):
        K.operator_upgrade_path("v23.9.2", "v26.7.0", KNOWN)


# -- gpu-operator x container runtime -------------------------------------------------------------
@pytest.mark.parametrize(
    "runtime, version, refused",
    [
        ("containerd", "2.0.5", True),
        ("containerd", "2.1.0", False),
        ("containerd", "1.7.30", False),
        ("containerd", "1.7.29", True),
        ("containerd", "v2.2.1", False),
        ("cri-o", "1.33.2", True),
        ("cri-o", "1.34.0", False),  # since v26.3.2
    ],
)
def test_nri_plugin_and_the_runtime(runtime: str, version: str, refused: bool) -> None:
    out = K.operator_runtime("v26.3.3", runtime, version, nri_enabled=True)
    assert bool(refusals(out)) is refused, out
    assert not [f for f in out if f.level == "warn"], out
    if refused:
        [f] = refusals(out)
        assert f.row == f"operator-nri/{runtime}" and f"{runtime} {version.lstrip('v')}" in f.text and f.source in f.text


def test_nri_plugin_is_refused_on_cri_o_before_26_3_2() -> None:
    [f] = K.operator_runtime("v26.3.0", "cri-o", "1.34.0", nri_enabled=True)
    assert f.level == "refuse" and f.row == "operator-nri/cri-o" and "v26.3.2" in f.text
    assert refusals(K.operator_runtime("v26.3.1", "crio", "1.35.0", nri_enabled=True))


def test_nri_plugin_needs_26_3_and_cdi() -> None:
    [f] = K.operator_runtime("v25.10.1", "containerd", "2.1.0", nri_enabled=True)
    assert f.level == "refuse" and "v26.3.0" in f.text
    [f] = K.operator_runtime("v26.3.3", "containerd", "2.1.0", nri_enabled=True, cdi_enabled=False)
    assert f.level == "refuse" and "cdi.enabled" in f.text


def test_without_nri_the_validated_range_only_warns() -> None:
    assert K.operator_runtime("v26.3.3", "containerd", "2.0.5", nri_enabled=False) == []
    assert K.operator_runtime("v26.3.3", "cri-o", "1.30.0", nri_enabled=False) == []
    [w] = K.operator_runtime("v24.9.2", "containerd", "2.0.5", nri_enabled=False)
    assert w.level == "warn" and "containerd 1.4–1.7" in w.text and w.row == "operator-runtime/v24.9"


def test_a_node_runtime_string_is_split() -> None:
    assert K.split_runtime("containerd://1.7.30") == ("containerd", "1.7.30")
    assert K.operator_runtime("v26.3.3", "containerd://2.0.5", "", nri_enabled=True)[0].level == "refuse"
    assert K.operator_runtime("v26.3.3", "containerd", "1.7.30-k3s1", nri_enabled=True) == []


# -- HAMi x Kubernetes, HAMi-WebUI x HAMi ---------------------------------------------------------
def test_hami_kubernetes() -> None:
    [f] = K.hami_kubernetes("2.10.0", "v1.22.17")
    assert f.level == "refuse" and f.row == "hami-kubernetes/2.10" and "Kubernetes 1.22" in f.text and "1.23 or later" in f.text
    assert K.hami_kubernetes("2.10.0", "v1.36.1") == []  # HAMi states no upper bound
    assert K.hami_kubernetes("v2.4.1", "1.18") == []
    [w] = K.hami_kubernetes("2.3.0", "1.30")
    assert w.level == "warn"


def test_webui_hami() -> None:
    [f] = K.webui_hami("1.2.0", "2.8.3")
    assert f.level == "refuse" and f.row == "webui-hami/from-1.1.1" and "HAMi 2.9.0 or later" in f.text and f.source in f.text
    assert K.webui_hami("1.2.0", "2.10.0") == []
    assert K.webui_hami("1.1.0", "2.8.3") == []
    assert refusals(K.webui_hami("1.0.5", "2.9.0"))
    [w] = K.webui_hami("0.9.0", "2.10.0")
    assert w.level == "warn"


# -- the CUDA step names the row ------------------------------------------------------------------
def test_cuda_refusal_names_the_row(tmp_path: Path) -> None:
    from gpuwizard.engine import Call, StepContext
    from gpuwizard.errors import PlanRefused
    from gpuwizard.steps.cuda import CudaAnswers, CudaStep

    from .test_steps_host import ctx_for, facts

    f = facts()
    f["driver"] = {"version": "550.127.05", "cuda_version": "12.4"}
    f["driver_status"] = "ok"
    engine = ctx_for(tmp_path, f).engine
    ctx = StepContext(engine, "cuda", Call(engine, planning=True, answers={}, run_id=engine.state.run_id))
    with pytest.raises(PlanRefused) as info:
        CudaStep().plan(ctx, CudaAnswers(version="12.6"))
    text = str(info.value)
    assert "CUDA 12.6 needs driver ≥ 560.28.03" in text
    assert "row cuda-driver/12.6" in text and "cuda-toolkit-release-notes" in text
