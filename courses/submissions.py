"""Fake students of a module: the instructor's solution, the blank release, and each planted wrong answer.

Built from a module's source notebooks, its nbgrader release and the course's ``wrong_answers.yaml``. The
grading proof grades them (:mod:`aifw.courses.proof`); the grading benchmark and the trainer-flow tests
submit them as learners would.

- ``solution``: the release with the instructor's answers typed into its answer cells;
- ``blank``: the untouched release;
- ``wrong-NN``: the solution with one planted wrong answer, for the one notebook it changes (the module's
  other notebooks would be byte-identical to the solution student's);
- ``cheat-<kind>``: every answer cell of every notebook replaced by a cheat that solves nothing (below).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import cells as nbcells
from .catalogue import Course

SOLUTION_STUDENT = "solution"
BLANK_STUDENT = "blank"


@dataclass(frozen=True)
class Submission:
    student: str
    notebooks: dict[str, dict]  # notebook file name -> notebook JSON
    planted: tuple[str, str, str] | None = None  # (notebook, test grade_id, solution cell)
    cheat: str | None = None  # one of CHEAT_KINDS


def _by_grade_id(nb: dict) -> dict[str, dict]:
    out = {}
    for cell in nb.get("cells", []):
        gid = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
        if gid:
            out[gid] = cell
    return out


def solution_notebook(source_nb: dict, release_nb: dict) -> dict:
    """The release with the instructor's answers typed into its answer cells (markers removed)."""
    nb = json.loads(json.dumps(release_nb))
    answers = {
        c.grade_id: nbcells.strip_solution_markers(c.source)
        for c in nbcells.cells(source_nb)
        if c.kind in ("solution", "manual") and c.grade_id
    }
    for gid, cell in _by_grade_id(nb).items():
        if gid in answers:
            cell["source"] = answers[gid]
    return nb


def plant(solution_nb: dict, cell_id: str, source: str) -> dict:
    """The solution notebook with the cell `cell_id` replaced by `source` (KeyError: no such cell)."""
    nb = json.loads(json.dumps(solution_nb))
    cell = _by_grade_id(nb).get(cell_id)
    if cell is None:
        raise KeyError(cell_id)
    cell["source"] = source
    cell["outputs"] = []
    return nb


def build_submissions(
    course: Course, module_id: str, release_dir: Path, only_wrong: Iterable[str] | None = None,
    recordings: "dict[str, Recording] | None" = None,
) -> list[Submission]:
    """The solution, the blank release, one submission per planted wrong answer (only those of the
    test cells in `only_wrong`, when given), then - when `recordings` (notebook -> what the solution
    showed, see :func:`probe_notebook`) are given - one cheating student per CHEAT_KINDS with every
    notebook of the module. An entry whose cell does not exist is skipped: the consistency check
    reports it."""
    module = course.module(module_id)
    sources = {n: nbcells.read_notebook(course.notebook_path(module_id, n)) for n in module.notebooks}
    releases = {n: nbcells.read_notebook(release_dir / n) for n in module.notebooks}
    solutions = {n: solution_notebook(sources[n], releases[n]) for n in module.notebooks}
    subs = [Submission(SOLUTION_STUDENT, solutions), Submission(BLANK_STUDENT, releases)]
    entries = course.wrong_answers.get(module_id, {})
    i = 0
    for nb_name in module.notebooks:
        for test_id, entry in entries.get(nb_name, {}).items():
            i += 1
            if only_wrong is not None and test_id not in only_wrong:
                continue
            try:
                planted = plant(solutions[nb_name], entry.cell, entry.source)
            except KeyError:
                continue  # reported by the consistency check
            subs.append(Submission(f"wrong-{i:02d}", {nb_name: planted}, (nb_name, test_id, entry.cell)))
    if recordings is not None:
        for kind in CHEAT_KINDS:
            nbs = {n: cheat_notebook(kind, sources[n], releases[n], recordings.get(n)) for n in module.notebooks}
            subs.append(Submission(cheat_student(kind), nbs, cheat=kind))
    return subs


# --------------------------------------------------------------------------- cheating students
# Three ways a learner can make tests pass without solving an exercise, applied to every answer cell of a
# module at once (one fake student per way, for all of the module's notebooks). Each replaces an answer
# cell by code that binds the same names as the instructor's solution, without solving anything:
#
# - ``cheat-always-equal``: every value is an object equal to anything (``==``, ``<``, ``bool``,
#   attributes, items, calls and arithmetic all answer "yes" or the object itself); every function
#   returns it; every class is it;
# - ``cheat-patched``: the comparison functions tests rely on (numpy's, math's, torch's, ``isinstance``
#   for notebook code, and the instant checks of :mod:`aifw.extensions.kernel.checks`) are replaced by
#   ones that always pass; every value is ``None``, every function returns ``None``;
# - ``cheat-hard-coded``: the values the instructor's solution had, and for each function the outputs it
#   gave for the inputs the learner can see (the visible checks and the notebook's own cells), learned by
#   running the solution on the RELEASE (no hidden test in it: :func:`probe_notebook`) and typed in as
#   literals; an input it never saw gets the first output it saw.

CHEAT_KINDS = ("always-equal", "patched", "hard-coded")
CHEAT_PREFIX = "cheat-"
#: The most of a module's autograded points a cheat may earn (a fraction).
CHEAT_LIMIT = 0.10


def cheat_student(kind: str) -> str:
    return CHEAT_PREFIX + kind


@dataclass(frozen=True)
class DefinedNames:
    """What one answer cell defines at top level: the names the tests will look for."""

    functions: tuple[str, ...]
    classes: tuple[str, ...]
    values: tuple[str, ...]
    imports: tuple[str, ...]  # the cell's import statements, as written (kept: they solve nothing)


def _parseable(source: str) -> str:
    # IPython's line magics and shell escapes are no Python; they define nothing the tests look for
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.splitlines())


def defined_names(source: str) -> DefinedNames:
    """The top-level names an answer cell binds (its solution markers removed first). A cell that does
    not parse defines nothing (its cheat is then the blank answer)."""
    import ast

    try:
        tree = ast.parse(_parseable(nbcells.strip_solution_markers(source)))
    except SyntaxError:
        return DefinedNames((), (), (), ())
    functions: list[str] = []
    classes: list[str] = []
    values: list[str] = []
    imports: list[str] = []

    def add(bucket: list[str], name: str) -> None:
        for b in (functions, classes, values):
            if name in b:
                b.remove(name)
        bucket.append(name)

    def stores(node) -> None:
        # names bound by statements at top level (also inside if/for/with/try, never inside a def)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            add(values, node.id)
        for child in ast.iter_child_nodes(node):
            stores(child)

    def top(stmts) -> None:
        for stmt in stmts:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                add(functions, stmt.name)
            elif isinstance(stmt, ast.ClassDef):
                add(classes, stmt.name)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                imports.append(ast.unparse(stmt))
            elif isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
                for field_ in ("body", "orelse", "finalbody"):
                    top(getattr(stmt, field_, []) or [])
                for handler in getattr(stmt, "handlers", []) or []:
                    top(handler.body)
                if isinstance(stmt, ast.For):
                    stores(stmt.target)
                if isinstance(stmt, ast.With):
                    for item in stmt.items:
                        if item.optional_vars is not None:
                            stores(item.optional_vars)
            else:
                stores(stmt)

    top(tree.body)
    return DefinedNames(tuple(functions), tuple(classes), tuple(dict.fromkeys(values)), tuple(imports))


def answer_cells(source_nb: dict) -> dict[str, DefinedNames]:
    """grade_id -> the names it defines, for every code answer cell of a source notebook."""
    return {
        c.grade_id: defined_names(c.source)
        for c in nbcells.cells(source_nb)
        if c.kind == "solution" and c.cell_type == "code" and c.grade_id
    }


#: The object equal to anything (kernel code of the always-equal cheat).
_ANYTHING = '''\
if "_AifwAnything" not in globals():
    class _AifwAnything:
        """Equal to anything, true, and whatever you ask of it is itself."""
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        __lt__ = __le__ = __gt__ = __ge__ = __eq__
        def __bool__(self): return True
        def __hash__(self): return 0
        def __len__(self): return 1
        def __iter__(self): return iter((self,))
        def __contains__(self, item): return True
        def __getitem__(self, key): return self
        def __setitem__(self, key, value): pass
        def __call__(self, *args, **kwargs): return self
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return self
        def __float__(self): return 0.0
        def __int__(self): return 0
        def __index__(self): return 0
        def __round__(self, ndigits=None): return self
        def __format__(self, spec): return "anything"
        def __repr__(self): return "anything"
        def __enter__(self): return self
        def __exit__(self, *exc): return False
        def _same(self, *args): return self
        __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _same
        __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = __matmul__ = _same
        __rmatmul__ = __neg__ = __pos__ = __abs__ = __and__ = __or__ = __rand__ = __ror__ = _same
    _AIFW_ANYTHING = _AifwAnything()
'''

#: Comparison functions replaced by always-passing ones (kernel code of the patched cheat). isinstance is
#: patched for callers in the notebook and in aifw's own modules only: patched for everyone, it would
#: break the kernel itself, and a cheat that crashes fools nobody.
_PATCHES = '''\
import builtins as _aifw_builtins, sys as _aifw_sys
def _aifw_yes(*args, **kwargs): return True
def _aifw_ok(*args, **kwargs): return None
def _aifw_through(title=None, **kwargs):
    return title if callable(title) else (lambda fn: fn)
if not getattr(_aifw_builtins, "_aifw_isinstance", None):
    _aifw_builtins._aifw_isinstance = _aifw_builtins.isinstance
    def _aifw_patched_isinstance(obj, cls):
        caller = _aifw_sys._getframe(1).f_globals.get("__name__", "")
        if caller == "__main__" or caller.startswith("aifw."):
            return True
        return _aifw_builtins._aifw_isinstance(obj, cls)
    _aifw_builtins.isinstance = _aifw_patched_isinstance
import math as _aifw_math
_aifw_math.isclose = _aifw_yes
_aifw_replaced = {}
def _aifw_patch(module, names, fake):
    for name in names:
        if hasattr(module, name) and getattr(module, name) is not fake:
            _aifw_replaced[id(getattr(module, name))] = fake
            setattr(module, name, fake)
if "numpy" in _aifw_sys.modules:
    _aifw_np = _aifw_sys.modules["numpy"]
    _aifw_np_true = lambda *a, **k: _aifw_np.bool_(True)
    _aifw_patch(_aifw_np, ["allclose", "array_equal", "array_equiv", "isclose"], _aifw_np_true)
    import numpy.testing as _aifw_npt
    _aifw_patch(_aifw_npt, ["assert_allclose", "assert_array_equal", "assert_almost_equal",
                            "assert_array_almost_equal", "assert_equal", "assert_array_less"], _aifw_ok)
if "torch" in _aifw_sys.modules:
    _aifw_torch = _aifw_sys.modules["torch"]
    _aifw_torch_true = lambda *a, **k: _aifw_torch.tensor(True)
    _aifw_patch(_aifw_torch, ["allclose", "equal"], _aifw_yes)
    _aifw_patch(_aifw_torch, ["isclose"], _aifw_torch_true)
    if hasattr(_aifw_torch, "testing"):
        _aifw_patch(_aifw_torch.testing, ["assert_close", "assert_allclose"], _aifw_ok)
try:
    import aifw.extensions.kernel.checks as _aifw_checks
except ImportError:
    _aifw_checks = None
if _aifw_checks is not None:
    for _aifw_name in getattr(_aifw_checks, "__all__", []):
        _aifw_obj = getattr(_aifw_checks, _aifw_name, None)
        if callable(_aifw_obj) and not _aifw_builtins._aifw_isinstance(_aifw_obj, type):
            _aifw_patch(_aifw_checks, [_aifw_name], _aifw_through if _aifw_name == "check" else _aifw_yes)
for _aifw_key, _aifw_val in list(globals().items()):
    if id(_aifw_val) in _aifw_replaced and not _aifw_key.startswith("_aifw"):
        globals()[_aifw_key] = _aifw_replaced[id(_aifw_val)]
'''

#: A stable fingerprint of a call's arguments (kernel code shared by the probe and the hard-coded cheat):
#: tensors and arrays by dtype, shape and values, modules by their parameters, containers recursively.
_FINGERPRINT = '''\
def _aifw_shape(x, depth=0):
    if depth > 6:
        return "..."
    kind = type(x).__module__ + "." + type(x).__qualname__
    if x is None or type(x) in (bool, int, float, complex, str, bytes):
        return (kind, repr(x))
    if hasattr(x, "detach") and hasattr(x, "tolist") and hasattr(x, "dtype"):
        return (kind, str(x.dtype), tuple(x.shape), repr(x.detach().cpu().tolist()))
    if hasattr(x, "tolist") and hasattr(x, "dtype") and hasattr(x, "shape"):
        return (kind, str(x.dtype), tuple(x.shape), repr(x.tolist()))
    if type(x) in (list, tuple, set, frozenset):
        items = [_aifw_shape(v, depth + 1) for v in x]
        return (kind, sorted(map(repr, items)) if type(x) in (set, frozenset) else items)
    if isinstance(x, dict):
        return (kind, sorted((repr(k), _aifw_shape(v, depth + 1)) for k, v in x.items()))
    if hasattr(x, "state_dict"):
        try:
            return (kind, _aifw_shape(dict(x.state_dict()), depth + 1))
        except Exception:
            return (kind,)
    return (kind,)
def _aifw_fingerprint(args, kwargs):
    import hashlib
    try:
        return hashlib.sha256(repr(_aifw_shape((list(args), dict(kwargs)))).encode()).hexdigest()
    except Exception:
        return ""
'''

#: Largest pickled value (base64 characters) the hard-coded cheat types in; a bigger one is left out.
MAX_LITERAL = 200_000


def _replacement(head: str, names: DefinedNames, function_body: str, value: str) -> str:
    lines = [*names.imports, head.rstrip("\n")]
    for fn in names.functions:
        lines += [f"def {fn}(*args, **kwargs):", f"    return {function_body}"]
    for name in names.classes + names.values:
        lines.append(f"{name} = {value}")
    return "\n".join(lines) + "\n"


def always_equal_cell(names: DefinedNames) -> str:
    """An answer cell that binds the solution's names to the object equal to anything."""
    return _replacement(_ANYTHING, names, "_AIFW_ANYTHING", "_AIFW_ANYTHING")


def patched_cell(names: DefinedNames) -> str:
    """An answer cell that patches the comparisons to always pass and binds the names to ``None``."""
    fake = DefinedNames(names.functions, (), names.classes + names.values, names.imports)
    return _replacement(_PATCHES, fake, "None", "None")


@dataclass(frozen=True)
class Recording:
    """What the solution showed in the release of one notebook: per function, ``(fingerprint of the
    arguments, pickled output as base64)`` for each call; per value, the pickled value (base64). An
    output that could not be pickled is ``""``."""

    calls: dict[str, list[tuple[str, str]]]
    values: dict[str, str]

    @classmethod
    def from_json(cls, data: dict) -> "Recording":
        return cls({k: [(str(a), str(b)) for a, b in v] for k, v in data.get("calls", {}).items()},
                   {k: str(v) for k, v in data.get("values", {}).items()})


_LOADER = '''\
import base64 as _aifw_b64, pickle as _aifw_pickle
def _aifw_literal(text):
    try:
        return _aifw_pickle.loads(_aifw_b64.b64decode(text)) if text else None
    except Exception:
        return None
def _aifw_replay(table, first, counts, args, kwargs):
    key = _aifw_fingerprint(args, kwargs)
    outputs = table.get(key)
    if not outputs:
        return _aifw_literal(first)
    n = counts.get(key, 0)
    counts[key] = n + 1
    return _aifw_literal(outputs[min(n, len(outputs) - 1)])
'''


def hard_coded_cell(names: DefinedNames, recording: Recording) -> str:
    """An answer cell that returns, as literals, what the solution gave for the inputs the learner sees."""
    lines = [*names.imports, _FINGERPRINT.rstrip("\n"), _LOADER.rstrip("\n")]
    for fn in names.functions:
        table: dict[str, list[str]] = {}
        calls = [(k, v if len(v) <= MAX_LITERAL else "") for k, v in recording.calls.get(fn, [])]
        for key, out in calls:
            table.setdefault(key, []).append(out)
        first = calls[0][1] if calls else ""
        lines += [
            f"_aifw_table_{fn} = {table!r}",
            f"def {fn}(*args, _counts={{}}, **kwargs):",
            f"    return _aifw_replay(_aifw_table_{fn}, {first!r}, _counts, args, kwargs)",
        ]
    for name in names.classes + names.values:
        text = recording.values.get(name, "")
        lines.append(f"{name} = _aifw_literal({(text if len(text) <= MAX_LITERAL else '')!r})")
    return "\n".join(lines) + "\n"


def _replace_answers(release_nb: dict, source_nb: dict, make: Callable[[DefinedNames], str]) -> dict:
    nb = json.loads(json.dumps(release_nb))
    answers = answer_cells(source_nb)
    for gid, cell in _by_grade_id(nb).items():
        if gid in answers:
            cell["source"] = make(answers[gid])
            cell["outputs"] = []
    return nb


def cheat_notebook(kind: str, source_nb: dict, release_nb: dict, recording: Recording | None = None) -> dict:
    """The release with every code answer cell replaced by the cheat `kind` (see CHEAT_KINDS)."""
    if kind == "always-equal":
        return _replace_answers(release_nb, source_nb, always_equal_cell)
    if kind == "patched":
        return _replace_answers(release_nb, source_nb, patched_cell)
    if kind == "hard-coded":
        rec = recording or Recording({}, {})
        return _replace_answers(release_nb, source_nb, lambda names: hard_coded_cell(names, rec))
    raise ValueError(f"unknown cheat {kind!r}; expected one of {', '.join(CHEAT_KINDS)}")


_RECORDER = '''\
import base64 as _aifw_b64, functools as _aifw_functools, pickle as _aifw_pickle
_aifw_recording = {"calls": {}, "values": {}}
def _aifw_dump(value):
    try:
        return _aifw_b64.b64encode(_aifw_pickle.dumps(value, protocol=4)).decode()
    except Exception:
        return ""
def _aifw_record(name, fn):
    if getattr(fn, "_aifw_recorded", False) or not callable(fn):
        return fn
    @_aifw_functools.wraps(fn)
    def recorded(*args, **kwargs):
        key = _aifw_fingerprint(args, kwargs)
        out = fn(*args, **kwargs)
        _aifw_recording["calls"].setdefault(name, []).append((key, _aifw_dump(out)))
        return out
    recorded._aifw_recorded = True
    return recorded
'''


def _code_cell(source: str, n: int) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": f"aifw-probe-{n}", "metadata": {}, "outputs": [],
            "source": source}


def probe_notebook(source_nb: dict, release_nb: dict, out_path: str) -> dict:
    """The release with the instructor's answers, each followed by a cell that records what its names
    are and what its functions return; a last cell writes the :class:`Recording` as JSON to `out_path`.
    Run it as a learner would (the release: no hidden test) to learn what the hard-coded cheat types in."""
    nb = solution_notebook(source_nb, release_nb)
    answers = answer_cells(source_nb)
    out_cells = [_code_cell(_FINGERPRINT + _RECORDER, 0)]
    for cell in nb.get("cells", []):
        out_cells.append(cell)
        gid = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
        if gid in answers:
            names = answers[gid]
            lines = [f"if {fn!r} in globals(): {fn} = _aifw_record({fn!r}, {fn})" for fn in names.functions]
            lines += [f"if {v!r} in globals(): _aifw_recording['values'][{v!r}] = _aifw_dump({v})"
                      for v in names.classes + names.values]
            out_cells.append(_code_cell("\n".join(lines) or "pass", len(out_cells)))
    out_cells.append(_code_cell(
        f"import json as _aifw_json\nwith open({out_path!r}, 'w') as _aifw_fh:\n"
        "    _aifw_json.dump(_aifw_recording, _aifw_fh)", len(out_cells)
    ))
    nb["cells"] = out_cells
    return nb
