"""The sanitize step of grading: nbgrader's own, plus one preprocessor of ours in front of it.

nbgrader restores a test cell's source, points and checksum from the gradebook, but a submission whose
cell flags were edited (a test cell marked ``grade: false``, a solution cell marked locked...) stops it:
"Inconsistent checksums", and the whole submission goes ungraded. ``RestoreCellFlags`` puts the flags of
every known cell back from the gradebook first, so the edit is undone and the cell is graded as written by
the instructor. Deleted test cells are put back too (nbgrader's ``add_missing_cells``).
The worker and the merge use the same list, so both see the same sanitized notebook.
"""
from __future__ import annotations

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets.config import Config


class RestoreCellFlags(NbGraderPreprocessor):
    """Reset grade/solution/locked/points of cells known to the gradebook to the gradebook's values."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            try:
                notebook = gb.find_notebook(info["notebook"], info["assignment"])
            except MissingEntry:
                return nb, resources
            graded = {c.name: c for c in notebook.grade_cells}
            solutions = {c.name for c in notebook.solution_cells}
            sources = {c.name: c for c in notebook.source_cells}
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader")
                if not isinstance(meta, dict):
                    continue
                gid = meta.get("grade_id")
                if gid not in sources:
                    continue
                want = {"grade": gid in graded, "solution": gid in solutions, "locked": bool(sources[gid].locked)}
                if gid in graded:
                    want["points"] = float(graded[gid].max_score)
                for key, value in want.items():
                    if meta.get(key) != value:
                        self.log.warning("cell %s: %s was %r in the submission; restored to %r", gid, key, meta.get(key), value)
                        meta[key] = value
                if gid not in graded:
                    meta.pop("points", None)
        return nb, resources


def sanitize_classes() -> list:
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import OverwriteCells

    steps = list(Autograde.class_traits()["sanitize_preprocessors"].default())
    steps.insert(steps.index(OverwriteCells), RestoreCellFlags)
    return steps


def configure(cfg: Config) -> Config:
    cfg.Autograde.sanitize_preprocessors = sanitize_classes()
    cfg.OverwriteCells.add_missing_cells = True
    return cfg
