"""Graded test cells must not depend on each other (issue 21, "cascading zeros").

    python -m grader.cell_isolation            # check every assignments/source/<name>/<name>.ipynb
    python -m grader.cell_isolation NB.ipynb   # check the given notebooks

A hidden test that reads a name bound by an *earlier test cell* fails with ``NameError``
whenever that earlier cell fails, so one mistake costs the points of two tests; and a
student can plant the name in an answer cell to be used instead. The rule: every name a
test cell reads without binding it itself must not be bound by any other test cell
(shared helpers belong in a ``[setup]`` cell). Names a setup or answer cell binds are
not counted (a test may swap an answer for a reference and restore it in ``finally``).
"""
from __future__ import annotations

import json
import sys
import symtable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bound_and_free(source: str) -> tuple[set[str], set[str]]:
    """(names the cell binds at top level, global names it reads without binding them)."""
    table = symtable.symtable(source, "<cell>", "exec")
    bound = {s.get_name() for s in table.get_symbols()
             if s.is_assigned() or s.is_imported() or s.is_namespace()}
    read: set[str] = set()

    def walk(tab: symtable.SymbolTable, top: bool) -> None:
        for sym in tab.get_symbols():
            if sym.is_referenced() and (top or sym.is_global()):
                read.add(sym.get_name())
        for child in tab.get_children():
            walk(child, False)

    walk(table, True)
    return bound, read - bound


def _kind(cell: dict) -> str:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if cell.get("cell_type") != "code":
        return "markdown"
    if meta.get("grade") and not meta.get("solution"):
        return "test"
    return "solution" if meta.get("solution") else "setup"


def violations(notebook: dict) -> list[str]:
    """One line per name a test cell reads that only another test cell binds."""
    cells = []
    for cell in notebook["cells"]:
        kind = _kind(cell)
        if kind == "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "?")
        try:
            bound, free = _bound_and_free(source)
        except SyntaxError as err:
            if kind == "test":
                return [f"{grade_id}: does not parse ({err.msg})"]
            continue
        cells.append((kind, grade_id, bound, free))
    found = []
    setup_bound = set().union(*[b for k, _, b, _ in cells if k != "test"] or [set()])
    for kind, grade_id, bound, free in cells:
        if kind != "test":
            continue
        others = {name: other for k, other, b, _ in cells if k == "test" and other != grade_id
                  for name in b}
        for name in sorted((free - setup_bound) & others.keys()):
            found.append(f"{grade_id}: reads {name!r}, which test cell {others[name]!r} binds "
                         "(define it in a setup cell)")
    return found


def check_paths(paths: list[Path]) -> dict[str, list[str]]:
    """``{notebook path: violations}`` for every notebook that has any."""
    report = {}
    for path in paths:
        problems = violations(json.loads(path.read_text()))
        if problems:
            report[str(path)] = problems
    return report


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(
        p for p in (ROOT / "assignments" / "source").glob("*/*.ipynb") if p.stem == p.parent.name)
    report = check_paths(paths)
    for path, problems in report.items():
        print(path, *problems, sep="\n  ")
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
