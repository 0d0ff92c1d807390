"""Every assignment as a Gradescope autograder, graded exactly as ``make autograde`` grades.

    python -m grader.gradescope build [--out dist/gradescope] [NAME ...]
        dist/gradescope/<name>.zip for every assignment (or those named): ``setup.sh`` and
        ``run_autograder`` at the root of the zip, next to what grading needs (``lib/``,
        ``grader/``, ``assignments/nbgrader_config.py``, ``assignments/source/<name>/`` with
        the hidden tests, ``requirements.txt``, ``pyproject.toml``).

    python -m grader.gradescope run --assignment NAME [--root /autograder]
        what ``run_autograder`` calls for one submission: take the notebook from
        ``<root>/submission/``, grade it with ``pipeline.grade_batch`` (the function behind
        ``make autograde``: reference solution first, screening, rebuild, policy, nbgrader in
        the bubblewrap sandbox, trusted re-check) and write ``<root>/results/results.json``.

The layout and the results format are Gradescope's autograder specification
(https://gradescope-autograders.readthedocs.io/en/latest/specs/): the zip is unpacked into
``/autograder/source``, ``run_autograder`` is copied to ``/autograder/run_autograder`` and
runs in ``/autograder`` with the student's files in ``/autograder/submission``; it must
write ``/autograder/results/results.json``. ``AUTOGRADER_ROOT`` replaces ``/autograder``
(the suite simulates Gradescope in a temporary folder).

``results.json`` has one test per graded cell of the notebook (``name`` = its nbgrader
``grade_id``, ``score``, ``max_score``, ``status``, ``output`` = the line of the grading
report that says why points were lost), the total ``score``, and an ``output`` for the whole
submission (the notes of the grading report, never the total, which would tell
before the due date how the hidden tests went). Tests that contain hidden tests have
``visibility: "after_due_date"``, the others ``"visible"``; the grader's own log
(``stdout``) stays hidden. A notebook that cannot be graded (none submitted, a corrupt file,
a grader that refuses to run) still gets a ``results.json``: score 0 and the reason.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from grader import course

ROOT = course.ROOT
STUDENT = "submission"                 # the one student of a Gradescope run
HIDDEN_MARK = "BEGIN HIDDEN TESTS"     # nbgrader's marker of hidden tests in a test cell
EXECUTABLE, READABLE = 0o755, 0o644
ZIP_DATE = (2020, 1, 1, 0, 0, 0)       # fixed, so that the same course gives the same zip

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu).
# The course is in /autograder/source; everything is installed into /autograder/venv.
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive
src=/autograder/source
apt-get update
# bubblewrap: every student's kernel runs in its sandbox, and the grader refuses to run
# without it. It needs unprivileged user namespaces on the host (see run_autograder).
apt-get install -y bubblewrap python3-venv python3-pip
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else
    "requirements.txt (numpy 2.3) needs Python >= 3.11: choose a newer base image")'
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
# torch: the CPU build of the pinned release (the default Linux wheel also carries CUDA
# libraries, gigabytes that grading never uses).
/autograder/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu \\
    "$(grep -E '^torch==' "$src/requirements.txt")"
/autograder/venv/bin/pip install -r "$src/requirements.txt"
# the course package: `lib` resolves to /autograder/source/lib, the folder the sandbox
# mounts for the hidden tests (as `make venv` does in a checkout)
/autograder/venv/bin/pip install --no-deps -e "$src"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, in /autograder. It grades the notebook in
# /autograder/submission exactly as `make autograde` does and writes
# /autograder/results/results.json (grader/gradescope.py). AUTOGRADER_ROOT replaces
# /autograder, so that a test can simulate the layout in a temporary folder.
root="${{AUTOGRADER_ROOT:-/autograder}}"
python="$root/venv/bin/python"
[ -x "$python" ] || python="$(command -v python3)"
mkdir -p "$root/results"
status=0
(cd "$root/source" && "$python" -m grader.gradescope run --assignment {name} --root "$root") || status=$?
if [ ! -s "$root/results/results.json" ]; then
    why="The autograder stopped before grading (exit status $status); see its log."
    printf '{{"score": 0.0, "output": "%s", "stdout_visibility": "hidden"}}\\n' "$why" \\
        > "$root/results/results.json"
fi
exit "$status"
"""


# --------------------------------------------------------------------------------------
# make gradescope: one zip per assignment
# --------------------------------------------------------------------------------------
def course_files(name: str) -> list[Path]:
    """The repository files an autograder for ``name`` needs, relative to the repository."""
    def tree(folder: Path) -> list[Path]:
        return [p for p in folder.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]

    files = [*tree(ROOT / "lib"), *sorted((ROOT / "grader").glob("*.py")),
             course.ASSIGNMENTS / "nbgrader_config.py",
             *tree(course.ASSIGNMENTS / "source" / name),
             ROOT / "requirements.txt", ROOT / "pyproject.toml"]
    return sorted(p.relative_to(ROOT) for p in files)


def _add(archive: zipfile.ZipFile, arcname: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100000 | mode) << 16   # a regular file with these permissions
    archive.writestr(info, data)


def build(name: str, out: Path) -> Path:
    """Write ``out/<name>.zip``, the Gradescope autograder of assignment ``name``."""
    if name not in course.assignment_names():
        raise ValueError(f"name: there is no assignment {name!r} in assignments/source "
                         f"(got {name!r}; known: {', '.join(course.assignment_names())})")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.zip"
    with zipfile.ZipFile(target, "w") as archive:
        _add(archive, "setup.sh", SETUP_SH.encode(), EXECUTABLE)
        _add(archive, "run_autograder", RUN_AUTOGRADER.format(name=name).encode(), EXECUTABLE)
        for rel in course_files(name):
            _add(archive, rel.as_posix(), (ROOT / rel).read_bytes(), READABLE)
    return target


def unpack(archive_path: Path, dest: Path) -> None:
    """Extract a zip keeping its permissions (``zipfile`` alone drops them), like ``unzip``."""
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            path = Path(archive.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode)


# --------------------------------------------------------------------------------------
# run_autograder: one submission
# --------------------------------------------------------------------------------------
def find_notebook(folder: Path, name: str) -> tuple[Path | None, str]:
    """The submitted notebook and a note for the student.

    ``<name>.ipynb`` anywhere in ``folder`` (the shallowest); otherwise the only notebook
    there, whatever its name (a browser saves a second download as ``<name> (1).ipynb``).
    Symbolic links and Jupyter's checkpoints are never taken.
    """
    found = []
    for here, dirs, files in os.walk(folder):   # does not follow symbolic links to folders
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
        found += [Path(here) / f for f in sorted(files) if f.endswith(".ipynb")]
    notebooks = [p for p in found if p.is_file() and not p.is_symlink()]
    exact = sorted((p for p in notebooks if p.name == f"{name}.ipynb"),
                   key=lambda p: (len(p.parts), str(p)))
    if exact:
        return exact[0], ""
    if len(notebooks) == 1:
        rel = notebooks[0].relative_to(folder)
        return notebooks[0], f"graded {rel} as {name}.ipynb (the only notebook submitted)"
    if notebooks:
        names = ", ".join(str(p.relative_to(folder)) for p in notebooks)
        return None, f"{len(notebooks)} notebooks submitted ({names}) and none is {name}.ipynb"
    return None, f"no notebook submitted: upload {name}.ipynb"


def sandbox_works() -> str:
    """Empty if bubblewrap can create its namespaces here, else why not (one line)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return ("bubblewrap (bwrap) is not installed: the autograder refuses to run "
                "students' code unsandboxed (setup.sh installs it)")
    proc = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                           "true"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return ("bubblewrap cannot create its sandbox on this machine (it needs unprivileged "
                f"user namespaces): {(proc.stderr.strip().splitlines() or [proc.returncode])[-1]}")
    return ""


def layout_of(name: str):
    from grader import pipeline

    return pipeline.Layout.of(json.loads(
        (course.ASSIGNMENTS / "source" / name / f"{name}.ipynb").read_text()))


def results_json(name: str, sub=None, note: str = "", failure: str = "") -> dict:
    """Gradescope's ``results.json`` for one graded :class:`pipeline.Submission`.

    Without ``sub`` (the grader could not run) every test scores 0 and ``failure`` says why.
    """
    layout = layout_of(name)
    why_not = failure or (sub.rejected if sub is not None else "")
    tests = []
    for gid, points in layout.points.items():
        score = 0.0 if sub is None else float(sub.scores.get(gid, 0.0))
        if why_not:
            output = f"not graded: {why_not}"
        else:
            output = sub.reasons.get(gid, "passed" if score == points else "lost points")
        tests.append({"name": gid, "score": score, "max_score": points,
                      "status": "passed" if score == points else "failed", "output": output,
                      "visibility": ("after_due_date" if HIDDEN_MARK in layout.tests[gid]
                                     else "visible")})
    score = sum(t["score"] for t in tests)
    # No total in the text: before the due date it would tell how the hidden tests went.
    lines = []
    if why_not:
        lines.append(f"This submission could not be graded: {why_not}.")
    if note:
        lines.append(f"Note: {note}.")
    if sub is not None:
        lines += [f"Rule broken in answer cell {gid}: {f}" for gid, found in sub.findings.items()
                  for f in found]
        lines += [f"Note: {n.splitlines()[0]}" for n in sub.notes]
    if any(t["visibility"] == "after_due_date" for t in tests):
        lines.append("Tests with hidden cases are shown after the due date.")
    return {"score": score, "output": "\n".join(lines), "stdout_visibility": "hidden",
            "tests": tests}


def run(root: Path, name: str) -> dict:
    """Grade ``root/submission`` as assignment ``name``; write and return ``results.json``."""
    from grader import pipeline
    from grader import sandbox

    started = time.monotonic()
    notebook, note = find_notebook(root / "submission", name)
    with tempfile.TemporaryDirectory(prefix="mlfs-gradescope-") as tmp:
        folder = Path(tmp) / "submissions" / STUDENT / name
        folder.mkdir(parents=True)
        if notebook is not None:
            shutil.copyfile(notebook, folder / f"{name}.ipynb")
        failure = sandbox_works()
        subs = []
        if not failure:
            try:
                subs = pipeline.grade_batch(folder.parents[1], Path(tmp) / "out")
            except (sandbox.SandboxUnavailable, pipeline.GradingRefused) as error:
                failure = str(error)
            except Exception as error:  # the student still gets a results.json
                failure = f"the grader failed ({type(error).__name__}: {error})"
        sub = next((s for s in subs if s.student == STUDENT), None)
        if sub is None and not failure:
            failure = "the grader returned no result for this submission"
        if sub is not None and notebook is None:
            sub.rejected = note       # say what was wrong with the upload, not the folder
            note = ""
        results = results_json(name, None if failure else sub, note, failure)
    results["execution_time"] = round(time.monotonic() - started)
    target = root / "results" / "results.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=1))
    print(f"{name}: {results['score']:g} points in {results['execution_time']} s"
          + (f"; not graded: {failure}" if failure else ""))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="one Gradescope autograder zip per assignment")
    make.add_argument("names", nargs="*", help="assignments (default: all)")
    make.add_argument("--out", type=Path, default=ROOT / "dist" / "gradescope")
    grade = commands.add_parser("run", help="grade /autograder/submission (run_autograder)")
    grade.add_argument("--assignment", required=True)
    grade.add_argument("--root", type=Path,
                       default=Path(os.environ.get("AUTOGRADER_ROOT", "/autograder")))
    args = parser.parse_args(argv)
    if args.command == "build":
        for name in args.names or course.assignment_names():
            print(f"wrote {build(name, args.out)}")
        return 0
    run(args.root, args.assignment)
    return 0


if __name__ == "__main__":
    sys.exit(main())
