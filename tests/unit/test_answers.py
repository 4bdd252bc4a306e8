"""Answer file: strict model, every error with file:line:col, key path, value and expectation."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from gpuwizard import answers as A

ROOT = Path(__file__).resolve().parents[2]


def errors_of(text: str) -> list[str]:
    with pytest.raises(A.AnswerFileError) as err:
        A.parse_answers(text, "answers.yaml")
    assert err.value.exit_code == 2
    return [str(p) for p in err.value.problems]


def test_examples_are_valid():
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        model = A.load_answers(path)
        assert model.version == 1


def test_selected_steps_follow_the_sections():
    model = A.parse_answers("version: 1\ndriver: {}\nhami: {split_count: 4}\n")
    assert A.selected_steps(model) == ["detect", "driver", "hami"]
    assert A.section(model, "detect").require_gpu == "auto"  # required unless the GPUs are an existing cluster's nodes (steps/detect.py)
    assert A.section(model, "hami").split_count == 4


def test_all_errors_reported_at_once_with_positions():
    text = (
        "version: 1\n"
        "driver:\n"
        "  method: pkg\n"
        "  bogus: 1\n"
        "kind:\n"
        "  cluster_name: Gpu_Cluster\n"
        "  workers: many\n"
    )
    errs = errors_of(text)
    assert errs == [
        "answers.yaml:3:11: driver.method: expected 'package' or 'runfile' (got 'pkg')",
        "answers.yaml:4:3: driver.bogus: unknown key (not part of answer file version 1) (got 1)",
        "answers.yaml:6:17: kind.cluster_name: expected a Kubernetes name: lowercase letters, digits and '-', "
        "starting and ending with a letter or digit, at most 63 characters (got 'Gpu_Cluster')",
        "answers.yaml:7:12: kind.workers: expected a valid integer, unable to parse string as an integer (got 'many')",
    ]


def test_missing_version_and_unknown_section():
    errs = errors_of("drivers: {}\n")
    assert "answers.yaml:1:1: version: required key is missing" in errs
    assert any("drivers: unknown key" in e for e in errs)


def test_yaml_syntax_error_names_the_line():
    errs = errors_of("version: 1\ndriver:\n  method: [package\n")
    assert len(errs) == 1 and errs[0].startswith("answers.yaml:4:1: YAML syntax error")


def test_duplicate_keys_are_errors():
    errs = errors_of("version: 1\ndriver: {}\ndriver: {method: runfile}\n")
    assert errs == ["answers.yaml:3:1: driver: duplicate key (the earlier value would be silently lost)"]


def test_aliases_are_refused():
    errs = errors_of("version: 1\nx: &a [1, 2]\ny: *a\n")
    assert "anchors and aliases are not allowed" in errs[0]


@pytest.mark.parametrize(
    "snippet, path, expected",
    [
        ("driver: {version: '565; rm -rf /'}", "driver.version", "a version such as"),
        ("driver: {runfile: 'http://x/a b.run'}", "driver.runfile", "http(s) URL without spaces"),
        ("driver: {runfile: '../../etc/shadow'}", "driver.runfile", "URL or an absolute path"),
        ("cuda: {env_file: /etc/../root/.bashrc}", "cuda.env_file", "without '..'"),
        ("kind: {existing_context: --kubeconfig=/etc/shadow}", "kind.existing_context", "not starting with '-'"),
        ("kind: {node_image: 'kindest/node:v1.31.2'}", "kind.node_image", "pinned with a digest"),
        ("hami: {node_label: 'gpu=on;reboot'}", "hami.node_label", "label value"),
        ("operator: {namespace: '$(id)'}", "operator.namespace", "Kubernetes name"),
        ("container: {test_image: 'ubuntu && curl evil'}", "container.test_image", "image reference"),
    ],
)
def test_values_that_reach_commands_are_validated(snippet: str, path: str, expected: str):
    errs = errors_of(f"version: 1\n{snippet}\n")
    assert len(errs) == 1, errs
    assert errs[0].startswith("answers.yaml:2:") and f" {path}: " in errs[0] and expected in errs[0]


def test_file_level_errors(tmp_path: Path):
    with pytest.raises(A.AnswerFileError, match="file not found"):
        A.load_answers(tmp_path / "nope.yaml")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"version: 1\n" + b"#" * (A.MAX_BYTES + 1))
    with pytest.raises(A.AnswerFileError, match="at most"):
        A.load_answers(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"version: 1\n\xff\xfe")
    with pytest.raises(A.AnswerFileError, match="not UTF-8"):
        A.load_answers(binary)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(A.AnswerFileError, match="empty"):
        A.load_answers(empty)


def test_committed_schema_matches_the_model():
    committed = json.loads(A.SCHEMA_PATH.read_text())
    assert committed == json.loads(json.dumps(A.json_schema())), (
        "gpuwizard/schema/answers-v1.json drifted from the model: run python -m gpuwizard.answers --write-schema"
    )


def test_schema_accepts_the_examples_and_rejects_unknown_keys():
    schema = json.loads(A.SCHEMA_PATH.read_text())
    import yaml

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "driver": {"bogus": 1}}, schema)


def test_state_round_trip_replays():
    model = A.parse_answers("version: 1\ndriver: {reboot: auto}\ncuda: {version: '12.6'}\n")
    saved = A.to_state(model)
    assert saved == {"version": 1, "driver": {"reboot": "auto"}, "cuda": {"version": "12.6"}}
    assert A.from_state(saved, "state.json") == model
