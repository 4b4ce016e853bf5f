"""Instant checks: run an exercise's *visible* tests in the learner's notebook and show ✓ or what failed.

Where the tests live (and why nothing hidden can leak through here): an exercise's test cell in the
nbgrader source starts with its visible tests, wrapped in a function decorated with :func:`check`, and
ends with the hidden tests between the ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS`` markers::

    @check("Exercise 1a: adding", hint="Use the + operator.")
    def _():
        assert add(1, 2) == 3, f"add(1, 2) should be 3, got {add(1, 2)}"
    ### BEGIN HIDDEN TESTS
    assert add(-7, 7) == 0
    ### END HIDDEN TESTS

``nbgrader generate_assignment`` removes the hidden region, so the learner's copy holds only the
decorated function: running the cell (or pressing its *Check again* button after editing the answer)
runs exactly the visible tests the learner can read. This module never sees, stores or fetches any other
test; it only runs the function it is given. When nbgrader autogrades, the same cell runs in full: the
visible tests through :func:`check`, then the hidden asserts.

A failed check shows the failed assertion (its message, or the ``assert`` line) and the hint, then raises
:class:`CheckFailed`, so the cell ends in an error and nbgrader gives the cell 0 points. A passed check
prints nothing on stderr (nbgrader counts any stderr output in a test cell as a failure).

``check_all()`` re-runs every visible check defined so far in this kernel and shows a ✓/✗ summary - a
one-line way to see where you stand.

Checks that cannot be fooled by patching: when this module is imported (by a notebook's first cell,
before any answer runs), it keeps the builtins and the comparison functions of ``math``, ``numpy`` and
``torch`` (those imported by then; the others at the first check) that tests rely on. A check refuses to
pass while any of them has been replaced in the kernel (:func:`tampered` names them), and says how to
get the originals back. The hidden tests of a course compare with ``type(x) is ...`` and plain
arithmetic, which no patch reaches.
"""
from __future__ import annotations

import builtins  # noqa: F401 - imported so that its guarded functions are kept at once
import html
import math  # noqa: F401 - likewise
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Callable

__all__ = ["CheckFailed", "CheckResult", "Check", "check", "check_all", "registered_checks", "tampered"]

#: The functions tests compare with, by module: kept as they are at import (or at the first check, for a
#: module imported later) so that a replacement can be told.
GUARDED = {
    "builtins": ("isinstance", "issubclass", "type", "len", "abs", "float", "int", "round", "sum", "min",
                 "max", "all", "any", "repr", "str"),
    "math": ("isclose",),
    "numpy": ("allclose", "isclose", "array_equal", "array_equiv"),
    "numpy.testing": ("assert_allclose", "assert_array_equal", "assert_almost_equal", "assert_equal"),
    "torch": ("allclose", "equal", "isclose"),
    "torch.testing": ("assert_close",),
}
_ORIGINALS: dict[tuple[str, str], object] = {}


def _keep_originals() -> None:
    for module_name, names in GUARDED.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name in names:
            if hasattr(module, name):
                _ORIGINALS.setdefault((module_name, name), getattr(module, name))


_keep_originals()


def tampered() -> list[str]:
    """The guarded functions (``numpy.allclose``, ``builtins.isinstance``, ...) that have been replaced in
    this kernel since this module was imported; [] when none."""
    _keep_originals()
    out = []
    for (module_name, name), original in _ORIGINALS.items():
        module = sys.modules.get(module_name)
        if module is not None and getattr(module, name, original) is not original:
            out.append(f"{module_name}.{name}" if module_name != "builtins" else name)
    return out

#: Set by nbgrader while it validates or autogrades a notebook: no widgets then.
NBGRADER_EXECUTION_ENV = "NBGRADER_EXECUTION"


class CheckFailed(AssertionError):
    """Raised by a failed visible check, so that the test cell ends in an error."""


@dataclass(frozen=True)
class CheckResult:
    title: str
    passed: bool
    message: str = ""  # what failed (empty when passed)
    hint: str = ""

    def as_text(self) -> str:
        if self.passed:
            return f"✓ {self.title}: the visible tests pass."
        text = f"✗ {self.title}: {self.message}"
        if self.hint:
            text += f"\n  Hint: {self.hint}"
        return text

    def as_html(self) -> str:
        title = html.escape(self.title)
        if self.passed:
            return (
                '<div class="aifw-check aifw-check-pass" style="border-left:4px solid #2e7d32;'
                'padding:4px 8px;background:#e8f5e9"><b>✓ ' + title + "</b>: the visible tests pass.</div>"
            )
        hint = f"<br><b>Hint:</b> {html.escape(self.hint)}" if self.hint else ""
        return (
            '<div class="aifw-check aifw-check-fail" style="border-left:4px solid #c62828;'
            'padding:4px 8px;background:#ffebee"><b>✗ ' + title + "</b>: "
            f"<code>{html.escape(self.message)}</code>{hint}</div>"
        )


def _explain(err: BaseException, fn: Callable) -> str:
    """A one-line account of why the visible tests failed, in terms the learner can act on."""
    if isinstance(err, NotImplementedError):
        return "not answered yet: the exercise cell still raises NotImplementedError - write your code there and run it"
    if isinstance(err, NameError):
        return f"{err} - did you run the exercise cell (and the cells above it)?"
    frames = traceback.extract_tb(err.__traceback__)
    in_test = [f for f in frames if f.filename == fn.__code__.co_filename]
    line = (in_test[-1].line or "").strip() if in_test else ""
    if isinstance(err, AssertionError):
        msg = str(err).strip()
        return msg if msg else f"this assertion failed: {line}" if line else "an assertion failed"
    where = f" (in: {(frames[-1].line or '').strip()})" if frames and frames[-1].line else ""
    return f"{type(err).__name__}: {err}{where}"


class Check:
    """The visible tests of one exercise part, runnable again and again."""

    def __init__(self, fn: Callable[[], object], title: str, hint: str = ""):
        self.fn = fn
        self.title = title
        self.hint = hint
        self.last: CheckResult | None = None

    def run(self) -> CheckResult:
        """Run the visible tests; never raises for a failing test."""
        replaced = tampered()
        if replaced:
            self.last = CheckResult(
                self.title, False,
                f"{', '.join(replaced)} {'was' if len(replaced) == 1 else 'were'} replaced in this kernel, so the "
                "checks cannot trust their comparisons - restart the kernel and run the notebook from the top, "
                "without assigning to library functions",
                self.hint,
            )
            return self.last
        try:
            self.fn()
        except Exception as err:  # a learner's bug can raise anything
            self.last = CheckResult(self.title, False, _explain(err, self.fn), self.hint)
        else:
            self.last = CheckResult(self.title, True)
            report_passed(self.title)
        return self.last

    def __call__(self) -> CheckResult:
        """Run the visible tests and show the result (a one-line call: ``my_check()``)."""
        result = self.run()
        _show(result)
        return result

    def __repr__(self) -> str:
        state = "not run" if self.last is None else ("passed" if self.last.passed else "failed")
        return f"<Check {self.title!r}: {state}>"


_REGISTRY: dict[str, Check] = {}


def registered_checks() -> list[Check]:
    """The checks defined so far in this kernel, in the order they were first defined."""
    return list(_REGISTRY.values())


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is always there in a kernel
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _widgets_wanted() -> bool:
    return _in_notebook() and not os.environ.get(NBGRADER_EXECUTION_ENV)


def _show(result: CheckResult) -> None:
    if _in_notebook():
        from IPython.display import display

        display({"text/plain": result.as_text(), "text/html": result.as_html()}, raw=True)
    else:
        print(result.as_text())


def _button(chk: Check):
    """A "Check again" button whose output area shows the newest result (learner sessions only)."""
    try:
        import ipywidgets as widgets
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        return None
    out = widgets.Output()
    button = widgets.Button(description="Check again", icon="check", tooltip="Run the visible tests again")

    def on_click(_):
        out.clear_output()
        with out:
            chk()

    button.on_click(on_click)
    return widgets.VBox([button, out])


def check(title: str | Callable | None = None, *, hint: str = "", raise_on_failure: bool = True):
    """Decorate a function of visible tests: run it now, show ✓ or the failure and ``hint``.

    Use as ``@check`` or ``@check("Exercise 1a", hint="...")``. The decorated name becomes a
    :class:`Check` (call it to run the tests again). On failure :class:`CheckFailed` is raised after the
    result is shown, unless ``raise_on_failure=False``.
    """

    def decorate(fn: Callable[[], object]) -> Check:
        name = title if isinstance(title, str) and title else fn.__name__.replace("_", " ").strip() or "check"
        chk = Check(fn, name, hint)
        _REGISTRY[name] = chk
        result = chk()
        if _widgets_wanted():
            box = _button(chk)
            if box is not None:
                from IPython.display import display

                display(box)
        if not result.passed and raise_on_failure:
            raise CheckFailed(f"{result.title}: {result.message}") from None
        return chk

    if callable(title):  # bare @check
        fn, title = title, None
        return decorate(fn)
    return decorate


def check_all() -> list[CheckResult]:
    """Run every visible check defined so far in this kernel again and show a ✓/✗ summary."""
    results = [c.run() for c in registered_checks()]
    passed = sum(r.passed for r in results)
    lines = [f"{'✓' if r.passed else '✗'} {r.title}" + ("" if r.passed else f" - {r.message}") for r in results]
    text = f"{passed} of {len(results)} checks pass\n" + "\n".join(lines)
    if _in_notebook():
        from IPython.display import display

        rows = "".join(
            f"<tr><td>{'✓' if r.passed else '✗'}</td><td>{html.escape(r.title)}</td>"
            f"<td>{'' if r.passed else html.escape(r.message)}</td></tr>"
            for r in results
        )
        page = f"<b>{passed} of {len(results)} checks pass</b><table>{rows}</table>"
        display({"text/plain": text, "text/html": page}, raw=True)
    else:
        print(text)
    return results


def report_passed(title: str) -> None:
    """Tell the hub's progress service that the check passed (aifw.extensions.kernel.progress_report: in the
    background, 1 s at most, silent outside a hub session; never raises into the learner's cell)."""
    from .progress_report import report_passed as post

    post(title)
