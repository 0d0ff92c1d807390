"""Build nbgrader source notebooks from their plain-Python authoring files.

    python tools/build_assignments.py            # write every assignments/source/<name>/<name>.ipynb
    python tools/build_assignments.py --check    # exit 1 if a committed notebook is stale

The authoring format (see CONTRIBUTING.md) is a Python file cut into cells by lines that
start with ``# %%``; the bracketed word says what nbgrader should make of the cell.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUTHORING = ROOT / "assignments" / "authoring"
SOURCE = ROOT / "assignments" / "source"

MARKER = re.compile(r"^# %% \[(markdown|setup|solution|test)\](.*)$")
KEYVAL = re.compile(r"(\w+)=(\S+)")


def _cell_options(text: str) -> dict[str, str]:
    return dict(KEYVAL.findall(text))


def parse(path: Path) -> list[dict]:
    """Split an authoring file into ``{"kind", "options", "source"}`` records."""
    cells: list[dict] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        match = MARKER.match(line)
        if match:
            cells.append({"kind": match.group(1), "options": _cell_options(match.group(2)),
                          "lines": [], "lineno": lineno})
        elif line.startswith("# %%"):
            raise ValueError(f"{path}:{lineno}: unknown cell marker {line!r}")
        elif cells:
            cells[-1]["lines"].append(line)
        elif line.strip():
            raise ValueError(f"{path}:{lineno}: text before the first cell marker")
    for cell in cells:
        lines = cell.pop("lines")
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if cell["kind"] == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        cell["source"] = "\n".join(lines)
    return cells


def _nbgrader_meta(cell: dict, index: int, path: Path) -> dict:
    kind, opts = cell["kind"], cell["options"]
    meta = {"schema_version": 3, "solution": False, "grade": False, "locked": True,
            "grade_id": opts.get("id", f"{kind}_{index}")}
    if kind == "solution":
        meta.update(solution=True, locked=False)
    elif kind == "test":
        if "points" not in opts or "id" not in opts:
            raise ValueError(f"{path}:{cell['lineno']}: a test cell needs id= and points=")
        meta.update(grade=True, points=float(opts["points"]))
    if kind in ("solution", "test") and "id" not in opts:
        raise ValueError(f"{path}:{cell['lineno']}: a {kind} cell needs id=")
    return meta


def to_notebook(cells: list[dict], path: Path) -> dict:
    """The nbformat-4 notebook, as a dict, for the parsed cells of ``path``."""
    nb_cells = []
    seen: set[str] = set()
    for index, cell in enumerate(cells):
        meta = _nbgrader_meta(cell, index, path)
        if meta["grade_id"] in seen:
            raise ValueError(f"{path}: grade_id {meta['grade_id']!r} is used twice")
        seen.add(meta["grade_id"])
        nb_cell = {"cell_type": "markdown" if cell["kind"] == "markdown" else "code",
                   "id": meta["grade_id"].replace("_", "-"),
                   "metadata": {"deletable": False, "editable": not meta["locked"],
                                "nbgrader": meta},
                   "source": cell["source"]}
        if nb_cell["cell_type"] == "code":
            nb_cell.update(execution_count=None, outputs=[])
        nb_cells.append(nb_cell)
    return {"cells": nb_cells,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                        "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def render(path: Path) -> str:
    return json.dumps(to_notebook(parse(path), path), indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale notebooks")
    args = parser.parse_args()
    stale = []
    for path in sorted(AUTHORING.glob("*.py")):
        target = SOURCE / path.stem / f"{path.stem}.ipynb"
        text = render(path)
        if target.exists() and target.read_text() == text:
            continue
        if args.check:
            stale.append(str(target.relative_to(ROOT)))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("stale (run tools/build_assignments.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
