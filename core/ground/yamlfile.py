"""Reading the project's YAML files (the site file, course.yaml, wrong_answers.yaml) and saying what is
wrong with them, the same way for all of them.

Ground floor: imports nothing of `aifw` but `aifw.names`.

- `read_yaml` refuses a key that appears twice in a mapping (PyYAML would silently keep the last one).
- `validation_problems` turns a pydantic `ValidationError` into one line per problem that names the key
  (with the id or name of list items: ``partitions[1] (gpu).max_gpus``), what is expected, and what was
  found.
- `FileProblems` is the error of a file that cannot be used: the path and every problem at once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .names import MEANING


class FileProblems(ValueError):
    """A file that cannot be used; the message names the file, each key and what to write there."""

    def __init__(self, path: Path | str, problems: list[str], kind: str = ""):
        self.path = Path(path) if not isinstance(path, Path) else path
        self.problems = list(problems)
        self.kind = kind
        head = f"{path}: {kind}" if kind else f"{path}"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head} ({len(self.problems)} problem(s)):\n{lines}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses repeated keys."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            repeated = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: the constructor below reports it
            repeated = False
        if repeated:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark,
                f"found the key {key!r} twice (each key may appear only once)", key_node.start_mark,
            )
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str) -> Any:
    """Parse YAML text; raises yaml.YAMLError (a repeated key is one)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: Path | str, *, error: type[FileProblems] = FileProblems, kind: str = "") -> Any:
    """The YAML data of a file; `error` (a FileProblems subclass) when it cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise error(path, [f"cannot read the file ({err.strerror})"], kind) from None
    except UnicodeDecodeError:
        raise error(path, ["not a UTF-8 text file"], kind) from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as err:
        raise error(path, [f"not valid YAML: {err}"], kind) from None


def key_path(loc: tuple, data: Any) -> str:
    """``('modules', 2, 'minutes')`` -> ``modules[2] (m3-dask).minutes`` (an item's id or name shown)."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict):
                label = node.get("id", node.get("name"))
                if isinstance(label, str):
                    out += f" ({label})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _expected(err: dict) -> str:
    kind, msg, ctx = err.get("type", ""), err.get("msg", ""), err.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        return "expected " + MEANING.get(pattern, f"a text matching {pattern}")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "expected a whole number"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()), "?")
        return f"expected a number {op} {bound}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} item(s)"
    if kind == "string_too_short":
        return "expected a non-empty text"
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    return msg.replace("Input should be", "expected")


def describe(err: dict, data: Any, loc: tuple, doc: str) -> str:
    """One problem in words. `doc` is the page that lists the keys (for unknown keys)."""
    kind = err.get("type", "")
    if loc and loc[-1] == "[key]":  # the name of a mapping key is wrong, not its value
        return f"key '{key_path(loc[:-1], data)}': this name is not allowed: {_expected(err)}"
    key = key_path(loc, data)
    if kind == "missing":
        return f"key '{key}': required but missing"
    if kind == "extra_forbidden":
        return f"key '{key}': unknown key (check its spelling against {doc})"
    got = err.get("input")
    if isinstance(got, (dict, list)):
        if kind.startswith("value_error") or kind == "assertion_error":
            return f"key '{key}': {_expected(err)}"
        got_text = f"a {type(got).__name__} of {len(got)}"
    else:
        got_text = repr(got)
    return f"key '{key}': {_expected(err)}; got {got_text}"


def validation_problems(err: ValidationError, data: Any, *, doc: str, strip: int = 0) -> list[str]:
    """Every problem of a pydantic error, one line each (`strip` leading location parts dropped)."""
    return [describe(e, data, tuple(e["loc"])[strip:], doc) for e in err.errors()]


def refuse_repeats(values, what: str) -> None:
    """For a validator: ValueError "<what> must be unique; repeated: a, b" when a value comes twice."""
    seen = list(values)
    repeated = sorted({v for v in seen if seen.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique; repeated: {', '.join(repeated)}")
