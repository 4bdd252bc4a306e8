"""The answer file: model, YAML loading with line marks, JSON Schema export.

An answer file is ``version: 1`` plus one optional section per step id. In unattended mode the steps
that run are ``detect`` and the sections present (``driver: {}`` runs the driver step with its
defaults). The model is strict: unknown keys are errors. Every error names the file, line and
column, the key path, the value and what was expected; all errors are reported at once and nothing
runs until the file is valid.

The JSON Schema in ``gpuwizard/schema/answers-v1.json`` is generated from this model
(``python -m gpuwizard.answers --write-schema``); a test fails when the two drift.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails

from .errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Step

MAX_BYTES = 1024 * 1024
SCHEMA_PATH = Path(__file__).parent / "schema" / "answers-v1.json"


def _build_answer_file() -> type[BaseModel]:
    """``version: 1`` plus one optional section per step of the registry, in run order: a step's
    section is the ``Answers`` model its module declares (a list of them where ``many``)."""
    from .network import Mirrors, Proxy
    from .steps import STEP_CLASSES

    fields: dict[str, Any] = {"version": (Literal[1], ...)}
    for cls in STEP_CLASSES:
        model = cls.Answers
        kind: Any = list[model] if cls.many else model  # type: ignore[valid-type]
        fields[cls.id] = (kind | None, Field(None, description=cls.description or None))
    # the session's network, for every step (gpuwizard/network.py)
    fields["mirrors"] = (Mirrors | None, Field(None, description="mirrors of what gpuwizard downloads: package "
                                                                 "repositories, runfiles, binaries, Helm charts, images"))
    fields["proxy"] = (Proxy | None, Field(None, description="an HTTP(S) proxy for every download and for "
                                                             "Docker's and containerd's services"))
    return create_model(
        "AnswerFile",
        __config__=ConfigDict(extra="forbid", title="gpuwizard answer file", defer_build=True),
        __doc__="gpuwizard answer file, version 1.",
        **fields,
    )


AnswerFile: Any = _build_answer_file()


def step_classes() -> list[type[Step[Any]]]:
    from .steps import STEP_CLASSES

    return list(STEP_CLASSES)


def json_schema() -> dict[str, Any]:
    schema: dict[str, Any] = AnswerFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# ------------------------------------------------------------------------------------------------
# Loading with marks


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str
    value: str | None = None  # the offending value, shown as "(got …)"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        if self.value is not None and "got " not in self.message:
            text += f" (got {self.value})"
        return text


class AnswerFileError(InvalidInput):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        n = len(problems)
        head = f"the answer file has {n} problem{'s' if n != 1 else ''}; nothing was executed"
        super().__init__(head + "\n" + "\n".join(f"  {p}" for p in problems))


class _MarkLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (no billion-laughs) and keeps marks per key path."""


KeyPath = tuple[str | int, ...]  # a path into the document: mapping keys and list indexes
Marks = dict[KeyPath, yaml.Mark]  # where each path starts in the file


def _at(mark: yaml.Mark | None) -> tuple[int, int]:
    """(line, column), 1-based, of a mark; (1, 1) when there is none."""
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _walk(node: yaml.Node, path: KeyPath, marks: Marks, key_marks: Marks, problems: list[Problem], fname: str) -> Any:
    marks[path] = node.start_mark
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(_problem(fname, key_node.start_mark, path, "a key must be a plain name"))
                continue
            key = key_node.value
            if key == "<<":
                problems.append(_problem(fname, key_node.start_mark, path, "merge keys ('<<') are not supported"))
                continue
            if key in out:
                problems.append(_problem(fname, key_node.start_mark, path + (key,), "duplicate key (the earlier value would be silently lost)"))
                continue
            key_marks[path + (key,)] = key_node.start_mark
            out[key] = _walk(value_node, path + (key,), marks, key_marks, problems, fname)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(child, path + (i,), marks, key_marks, problems, fname) for i, child in enumerate(node.value)]
    loader = _MarkLoader("")
    return loader.construct_object(node, deep=True)


def _problem(fname: str, mark: yaml.Mark, path: KeyPath, message: str) -> Problem:
    return Problem(fname, mark.line + 1, mark.column + 1, _dotted(path), message)


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_yaml_with_marks(text: str, fname: str) -> tuple[Any, Marks, Marks, list[Problem]]:
    problems: list[Problem] = []
    loader = _MarkLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            msg += f" ({exc.context}"
            if exc.context_mark is not None and exc.context_mark is not mark:
                msg += f" that started at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
            msg += ")"
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, {}, {}, [Problem(fname, line, col, "", msg)]
    except yaml.YAMLError as exc:
        return None, {}, {}, [Problem(fname, 1, 1, "", f"YAML error: {exc}")]
    finally:
        loader.dispose()
    if node is None:
        return None, {}, {}, [Problem(fname, 1, 1, "", "the file is empty; expected at least 'version: 1'")]
    if _has_alias(node, set()):
        return None, {}, {}, [_problem(fname, node.start_mark, (), "YAML anchors and aliases are not allowed in answer files")]
    marks: Marks = {}
    key_marks: Marks = {}
    data = _walk(node, (), marks, key_marks, problems, fname)
    return data, marks, key_marks, problems


def _has_alias(node: yaml.Node, seen: set[int]) -> bool:
    if id(node) in seen:
        return True  # a node reached twice is an alias
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        return any(_has_alias(k, seen) or _has_alias(v, seen) for k, v in node.value)
    if isinstance(node, yaml.SequenceNode):
        return any(_has_alias(c, seen) for c in node.value)
    return False


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: ErrorDetails) -> str:
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    elif msg.startswith("Input should be"):
        msg = "expected " + msg[len("Input should be "):]
    elif err["type"] == "extra_forbidden":
        return "unknown key (not part of answer file version 1)"
    elif err["type"] == "missing":
        return "required key is missing"
    return msg


def validate(data: Any, fname: str, marks: Marks, key_marks: Marks) -> tuple[Any, list[Problem]]:
    if not isinstance(data, dict):
        return None, [Problem(fname, 1, 1, "", "expected a mapping at the top level, starting with 'version: 1'")]
    try:
        return AnswerFile.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            # pydantic adds union branch names to loc; keep only the parts present in the data
            loc = _real_path(data, tuple(err["loc"]))
            table = key_marks if err["type"] == "extra_forbidden" else marks
            mark: yaml.Mark | None = None
            probe: KeyPath | None = loc
            while mark is None and probe is not None:
                mark = table.get(probe) or marks.get(probe)
                probe = probe[:-1] if probe else None
            line, col = _at(mark)
            value = None
            if err["type"] != "missing" and "input" in err and not isinstance(err["input"], dict):
                value = _describe(err["input"])
            problems.append(Problem(fname, line, col, _dotted(loc), _message(err), value))
        # one report per (path, message): unions can repeat themselves
        unique = list(dict.fromkeys(problems))
        return None, _collapse_unions(unique)


def _real_path(data: Any, loc: tuple[str | int, ...]) -> KeyPath:
    """Keep the parts of a pydantic loc that walk through ``data`` (drops union tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not any(c in part for c in "[]()-,") and part not in ("function-after",):
            # a missing key: keep it so the report names it
            if part.isidentifier():
                path.append(part)
                node = None
    return tuple(path)


def _collapse_unions(problems: list[Problem]) -> list[Problem]:
    """A value refused by every branch of a union yields one error per branch; merge them."""
    merged: dict[tuple[int, int, str], Problem] = {}
    for p in problems:
        key = (p.line, p.column, p.path)
        if key in merged:
            prev = merged[key]
            if p.message not in prev.message:
                extra = p.message.removeprefix("expected ")
                merged[key] = Problem(p.file, p.line, p.column, p.path, f"{prev.message} or {extra}", prev.value)
        else:
            merged[key] = p
    return list(merged.values())


def _podspec_list_problems(model: Any, fname: str, marks: Marks) -> list[Problem]:
    """Rules over the whole podspec list: unique names/outputs; outputs are system paths
    (absolute, taken under --root like every system path)."""
    from .podspec import duplicate_problems
    from .validate import _abs_path

    out = []
    for problem in duplicate_problems(model.podspec or []):
        index = int(problem.field.split("[", 1)[1].split("]", 1)[0])
        key = problem.field.rsplit(".", 1)[-1]
        mark = marks.get(("podspec", index, key)) or marks.get(("podspec", index))
        out.append(Problem(fname, *_at(mark), problem.field, problem.message.split(": ", 1)[-1]))
    for index, spec in enumerate(model.podspec or []):
        if spec.output is None:
            continue
        try:
            _abs_path(spec.output)
        except ValueError as exc:
            mark = marks.get(("podspec", index, "output")) or marks.get(("podspec", index))
            out.append(Problem(fname, *_at(mark), f"podspec[{index}].output", str(exc), repr(spec.output)))
    return out


def load_answers(path: str | Path) -> Any:
    """Read and validate an answer file; raises AnswerFileError listing every problem."""
    fname = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise AnswerFileError([Problem(fname, 1, 1, "", "file not found")]) from None
    except OSError as exc:
        raise AnswerFileError([Problem(fname, 1, 1, "", f"cannot read the file: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        raise AnswerFileError([Problem(fname, 1, 1, "", f"file is {len(raw)} bytes; an answer file may be at most {MAX_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnswerFileError([Problem(fname, 1, 1, "", f"not UTF-8 text (byte {exc.start})")]) from None
    return parse_answers(text, fname)


def parse_answers(text: str, fname: str = "<answers>") -> Any:
    data, marks, key_marks, problems = parse_yaml_with_marks(text, fname)
    if data is None and problems:
        raise AnswerFileError(problems)
    model, more = validate(data, fname, marks, key_marks)
    problems += more
    if model is not None and model.podspec:
        problems += _podspec_list_problems(model, fname, marks)
    if problems or model is None:
        raise AnswerFileError(sorted(problems, key=lambda p: (p.line, p.column)))
    return model


def selected_steps(answers: Any) -> list[str]:
    """detect, then the sections present, in the order of the registry."""
    return [cls.id for cls in step_classes() if cls.id == "detect" or getattr(answers, cls.id, None) is not None]


def section(answers: Any, step_id: str) -> Any:
    """A step's answers: its section of the file, else its defaults (``[]`` for a list section)."""
    value = getattr(answers, step_id, None)
    if value is not None:
        return value
    cls = next((c for c in step_classes() if c.id == step_id), None)
    if cls is None:
        return None
    return [] if cls.many else cls.Answers()


def sections(answers: Any) -> dict[str, Any]:
    """Every step's answers (set or default), keyed by step id: what a session hands the engine."""
    return {cls.id: section(answers, cls.id) for cls in step_classes()}


def to_state(answers: Any) -> dict[str, Any]:
    """The answers as saved in the state file (what the user set; replayable as an answer file)."""
    dumped: dict[str, Any] = answers.model_dump(mode="json", exclude_unset=True)
    return dumped


def from_state(data: dict[str, Any], state_path: str) -> Any:
    try:
        return AnswerFile.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"the answers saved in {state_path} are no longer valid: {exc.errors()[0]['msg']}") from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args == ["--write-schema"]:
        SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_PATH.write_text(text)
        print(f"wrote {SCHEMA_PATH}")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
