"""Interactive widgets for course notebooks that also behave while nbgrader grades them.

    from aifw.extensions.kernel.widgets import interact

    @interact(lr=widgets.FloatLogSlider(value=0.1, base=10, min=-3, max=0))
    def plot_loss(lr): ...

    interact(draw_shards, n=(1, 24), world_size=(1, 8))       # the call form works too

In a learner's session this *is* ``ipywidgets.interact``. While nbgrader runs the notebook (it sets
``NBGRADER_EXECUTION``), the function is instead called once with the widgets' initial values and no widget is
created: its prints and plots become ordinary cell outputs. Reason: nbclient, which nbgrader uses to run
notebooks, sometimes blocks a cell whose output an ``interact`` captures until the cell timeout
(jupyter/nbclient#312; measured here in 2-5% of executions, 60 s each time). Plain widgets (buttons, sliders,
``Output`` areas) are not affected.
"""
from __future__ import annotations

import os
from typing import Any, Callable

__all__ = ["interact", "grading"]


def grading() -> bool:
    """True while nbgrader validates or autogrades the notebook."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def _initial_value(abbrev: Any) -> Any:
    """The value a widget (or an ipywidgets abbreviation such as ``(0, 10)`` or ``["a", "b"]``) starts at."""
    from ipywidgets import fixed
    from ipywidgets.widgets.interaction import interactive

    if isinstance(abbrev, fixed):
        return abbrev.value
    if hasattr(abbrev, "value") and hasattr(abbrev, "keys"):  # a widget
        return abbrev.value
    widget = interactive.widget_from_abbrev(abbrev)
    if widget is None:  # a plain value that is passed through unchanged
        return abbrev
    value = widget.value
    widget.close()
    return value


def interact(__interact_f: Callable | None = None, **kwargs: Any):
    """``ipywidgets.interact``, or - while nbgrader grades - one plain call with the initial values."""
    if not grading():
        import ipywidgets

        if __interact_f is None:
            return ipywidgets.interact(**kwargs)
        return ipywidgets.interact(__interact_f, **kwargs)

    def run(f: Callable) -> Callable:
        f(**{name: _initial_value(abbrev) for name, abbrev in kwargs.items()})
        return f

    return run if __interact_f is None else run(__interact_f)
