"""The nbgrader pipeline of the course, as functions the suite and the Makefile share.

A *course folder* is a copy of ``assignments/`` (``nbgrader_config.py`` and ``source/``);
the suite builds one in a temporary directory for every assignment it checks, so the
real pipeline runs without touching the repository.

Mutants are known-wrong answers kept in ``assignments/mutants/<assignment>/*.py``; a
header names the solution cell each replaces and the test cells that must catch it::

    # mutant: <the pitfall>
    # replaces: <grade_id of a solution cell>
    # fails: <grade_id>[, <grade_id> ...]
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "assignments"
VENV_BIN = Path(sys.executable).parent


def assignment_names() -> list[str]:
    """Every assignment that has a source notebook, in alphabetical order."""
    return sorted(p.parent.name for p in ASSIGNMENTS.glob("source/*/*.ipynb")
                  if p.stem == p.parent.name)


def new_course(dest: Path, names: list[str] | None = None) -> Path:
    """Copy the course configuration and the source of ``names`` (default: all) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ASSIGNMENTS / "nbgrader_config.py", dest / "nbgrader_config.py")
    for name in names or assignment_names():
        shutil.copytree(ASSIGNMENTS / "source" / name, dest / "source" / name)
    return dest


def nbgrader(course: Path, *args: str, timeout: float = 1800, check: bool = True,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` in ``course``; raise with nbgrader's log if it fails.

    nbgrader calls helper programs (alembic, jupyter) by name, so the virtualenv's
    ``bin`` folder goes first on ``PATH``.
    """
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               MLFS_ROOT=str(ROOT), **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def release(course: Path, name: str) -> Path:
    """``generate_assignment``: write the student version; return its notebook path."""
    nbgrader(course, "generate_assignment", name, "--force")
    return course / "release" / name / f"{name}.ipynb"


def release_many(course: Path, names: list[str]) -> dict[str, Path]:
    """``generate_assignment`` for several assignments in this process (one nbgrader start).

    Starting nbgrader costs seconds; the instructor's ``make release`` and the batch
    grader release every assignment through nbgrader's Python API instead.
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["MLFS_ROOT"] = str(ROOT)
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    released = {}
    for name in names:
        result = api.generate_assignment(name, force=True, create=True)
        if not result["success"]:
            raise RuntimeError(f"generate_assignment {name} failed:\n{result.get('log', '')[-6000:]}")
        released[name] = course / "release" / name / f"{name}.ipynb"
    return released


def submit(course: Path, student: str, name: str, notebook: dict | Path | bytes) -> Path:
    """Place a notebook (a dict, a file to copy, or raw bytes) as ``student``'s submission."""
    target = course / "submitted" / student / name / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(notebook, dict):
        target.write_text(json.dumps(notebook, indent=1))
    elif isinstance(notebook, bytes):
        target.write_bytes(notebook)
    else:
        shutil.copy(notebook, target)
    return target


def autograde(course: Path, name: str) -> subprocess.CompletedProcess:
    """Autograde every submission of ``name`` in ``course`` (one nbgrader call).

    This is plain nbgrader: each test cell runs whole (make, run and check) in the
    sandboxed kernel, which therefore gets ``lib``, the checks' oracle. ``make autograde``
    (:func:`grader.pipeline.grade_batch`) grades differently: see ``assignments/README.md``.
    """
    return nbgrader(course, "autograde", name, "--force", env={"MLFS_KERNEL_LIB": "1"})


def cell_scores(course: Path, name: str, student: str) -> dict[str, tuple[float, float]]:
    """``{grade_id: (score, max_score)}`` of one autograded submission."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(name, name, student)
        return {g.name: (float(g.score), float(g.max_score)) for g in notebook.grades}


def export_grades(course: Path, csv_path: Path) -> Path:
    """``nbgrader export``: one CSV row per student and assignment."""
    nbgrader(course, "export", "--to", str(csv_path))
    return csv_path


@dataclass(frozen=True)
class Mutant:
    """A known-wrong answer: the source of one solution cell and the tests it must fail."""

    assignment: str
    name: str
    description: str
    replaces: str
    fails: tuple[str, ...]
    code: str

    @property
    def student(self) -> str:
        return f"mutant-{self.name}"


def read_mutant(path: Path) -> Mutant:
    """Parse a mutant file; its first three lines are the header."""
    lines = path.read_text().splitlines()
    header = {}
    for line in lines[:3]:
        key, _, value = line.removeprefix("# ").partition(":")
        header[key.strip()] = value.strip()
    missing = {"mutant", "replaces", "fails"} - header.keys()
    if missing:
        raise ValueError(f"{path}: header lacks {sorted(missing)}")
    fails = tuple(f.strip() for f in header["fails"].split(",") if f.strip())
    return Mutant(assignment=path.parent.name, name=path.stem, description=header["mutant"],
                  replaces=header["replaces"], fails=fails,
                  code="\n".join(lines[3:]).strip() + "\n")


def mutants(name: str) -> list[Mutant]:
    return [read_mutant(p) for p in sorted((ASSIGNMENTS / "mutants" / name).glob("*.py"))]


def apply_mutant(source_notebook: dict, mutant: Mutant) -> dict:
    """The instructor's notebook with one solution cell replaced by the mutant's code."""
    notebook = copy.deepcopy(source_notebook)
    cells = [c for c in notebook["cells"]
             if c["metadata"].get("nbgrader", {}).get("grade_id") == mutant.replaces]
    if len(cells) != 1 or not cells[0]["metadata"]["nbgrader"].get("solution"):
        raise ValueError(f"mutant {mutant.name}: no solution cell {mutant.replaces!r}")
    cells[0]["source"] = mutant.code
    return notebook
