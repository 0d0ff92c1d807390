"""Grade a batch of submissions fairly: nothing lost, nothing self-graded.

``grade_batch`` is what ``make autograde`` runs. For every
``<submissions>/<student>/<assignment>/<assignment>.ipynb`` it

1. **screens** the file outside any kernel: an empty, truncated or non-notebook file, or
   a notebook of another assignment, is rejected with a reason (score 0);
2. **rebuilds** the notebook from the instructor's release: only the student's answer
   cells (matched by nbgrader ``grade_id``) are taken; read-only cells come from the
   release, outputs are dropped, cells the student added are not run;
3. applies the **static policy** (``grader/policy.py``) to each answer cell; a cell that
   tampers with the grader is replaced by a stub before anything runs;
4. runs **nbgrader autograde** once per assignment, each kernel in the bubblewrap sandbox
   with a per-cell timeout and a memory cap (``nbgrader_config.py``);
5. runs the **trusted re-check** (``grader/split.py``): every test's ``make`` and ``check``
   again in the grader, its ``run`` beside the student's answers in a separate sandboxed
   process, with only plain arrays crossing;
6. keeps for each test cell ``min(nbgrader, re-check, policy)`` (lowered scores are written
   to the gradebook as manual scores), puts a *grading report* cell at the top of the
   student's feedback saying what happened to every test, and writes ``grades.csv`` with
   one row per student and assignment.
"""
from __future__ import annotations

import copy
import csv
import html
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader import course
from grader import policy

STUB = "raise NotImplementedError()"
MAX_OUTPUT_CHARS = 20_000   # per output of the feedback notebook; the rest is cut with a note


def clean_text(text: str) -> str:
    """``text`` with lone surrogates escaped, so that writing it as UTF-8 cannot raise."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


REFERENCE = "_reference_solution"   # the instructor's solution, graded first in every batch


class GradingRefused(RuntimeError):
    """The instructor's own solution did not get full marks: no grade may be trusted."""


@dataclass
class Submission:
    """One student's notebook for one assignment, and what grading found."""

    student: str
    assignment: str
    path: Path
    rejected: str = ""                      # why the file could not be graded at all
    notes: list[str] = field(default_factory=list)
    findings: dict[str, list[policy.Finding]] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)   # grade_id -> answer source
    scores: dict[str, float] = field(default_factory=dict)  # test grade_id -> final score
    reasons: dict[str, str] = field(default_factory=dict)   # test grade_id -> why it lost points
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(self.scores.values())


# --------------------------------------------------------------------------------------
# The instructor's notebook
# --------------------------------------------------------------------------------------
def _text(cell: dict) -> str:
    source = cell.get("source", "")
    return clean_text("".join(source) if isinstance(source, list) else str(source))


def _meta(cell: dict) -> dict:
    meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
    nbg = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
    return nbg if isinstance(nbg, dict) else {}


@dataclass
class Layout:
    """The cells of an assignment, from its source notebook."""

    setup: list[str]                 # read-only code cells that are not tests
    answers: dict[str, str]          # solution grade_id -> source (with the solution)
    tests: dict[str, str]            # test grade_id -> source (hidden tests included)
    points: dict[str, float]
    texts: dict[str, str]            # grade_id -> source of every cell

    @classmethod
    def of(cls, source_nb: dict) -> "Layout":
        setup, answers, tests, points, texts = [], {}, {}, {}, {}
        for cell in source_nb["cells"]:
            meta = _meta(cell)
            texts[meta.get("grade_id", "")] = _text(cell)
            if cell["cell_type"] != "code":
                continue
            if meta.get("solution"):
                answers[meta["grade_id"]] = _text(cell)
            elif meta.get("grade"):
                tests[meta["grade_id"]] = _text(cell)
                points[meta["grade_id"]] = float(meta.get("points", 0))
            else:
                setup.append(_text(cell))
        return cls(setup, answers, tests, points, texts)

    @property
    def setup_names(self) -> set[str]:
        return set().union(*(policy.top_level_names(s) for s in self.setup))


# --------------------------------------------------------------------------------------
# 1-3: screen, rebuild, policy
# --------------------------------------------------------------------------------------
def screen(raw: bytes, name: str, layout: Layout) -> tuple[dict | None, str]:
    """The submitted notebook as a dict, or ``None`` and the reason it cannot be graded."""
    if not raw.strip():
        return None, "the file is empty"
    try:
        notebook = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"the file is not valid notebook JSON (truncated or corrupt?): {error}"
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        return None, "the file is JSON but not a Jupyter notebook (no list of cells)"
    graded_ids = set(layout.answers) | set(layout.tests)
    found = {_meta(c).get("grade_id") for c in cells} & graded_ids
    if not found:
        return None, (f"no cell of assignment '{name}' was found: is this the notebook of "
                      "another assignment, or were all its cells replaced?")
    return notebook, ""


def rebuild(notebook: dict, release_nb: dict, layout: Layout, sub: Submission) -> dict:
    """The release with the student's answers put in; record what was ignored and why."""
    student_cells: dict[str, list[dict]] = {}
    for cell in notebook["cells"]:
        gid = _meta(cell).get("grade_id")
        if gid:
            student_cells.setdefault(gid, []).append(cell)
    released = {_meta(c).get("grade_id"): c for c in release_nb["cells"]}
    for gid, cells in student_cells.items():
        if len(cells) > 1:
            sub.notes.append(f"cell `{gid}` appears {len(cells)} times: the first one is used")
    for gid in layout.answers:
        cells = student_cells.get(gid)
        if not cells or cells[0].get("cell_type") != "code":
            sub.notes.append(f"answer cell `{gid}` is missing (deleted?): graded as unanswered")
            sub.answers[gid] = STUB
        else:
            sub.answers[gid] = _text(cells[0])
    for gid, cell in released.items():
        if gid in layout.answers or gid is None:
            continue
        mine = student_cells.get(gid)
        if not mine:
            sub.notes.append(f"read-only cell `{gid}` was deleted: the original is used")
        elif _text(mine[0]) not in (_text(cell), layout.texts.get(gid)):
            sub.notes.append(f"read-only cell `{gid}` was edited: the original is used")
    extra = sum(1 for c in notebook["cells"] if not _meta(c).get("grade_id")
                and c.get("cell_type") == "code")
    if extra:
        sub.notes.append(f"{extra} code cell(s) you added are not run by the grader")
    if any(c.get("outputs") for c in notebook["cells"]):
        sub.notes.append("outputs saved in the notebook are ignored: every cell is re-run")
    released_ids = {_meta(c).get("grade_id"): c.get("id") for c in release_nb["cells"]}
    if any(c.get("id") not in (None, released_ids.get(_meta(c).get("grade_id")))
           for c in notebook["cells"] if _meta(c).get("grade_id")):
        sub.notes.append("cell ids were changed: ignored (cells are matched by their grade_id)")
    rebuilt = copy.deepcopy(release_nb)
    for cell in rebuilt["cells"]:
        gid = _meta(cell).get("grade_id")
        if gid in layout.answers:
            cell["source"] = sub.answers[gid]
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return rebuilt


def apply_policy(rebuilt: dict, layout: Layout, sub: Submission) -> None:
    """Check every answer cell; stub out the ones that tamper, before anything runs."""
    setup_modules = policy.imported_roots(layout.setup)
    aliases = policy.import_aliases(layout.setup)
    for gid, source in sub.answers.items():
        if len(source) > policy.MAX_ANSWER_CHARS:
            sub.findings[gid] = [policy.Finding(
                "size", 1, f"the cell has {len(source):,} characters, more than the "
                f"{policy.MAX_ANSWER_CHARS:,} an answer may have: it is not run")]
            continue
        found = policy.check_cell(source, setup_names=layout.setup_names,
                                  setup_modules=setup_modules, setup_aliases=aliases)
        found += policy.forbidden_uses(source, sub.assignment, gid)
        if found:
            sub.findings[gid] = found
    for cell in rebuilt["cells"]:
        gid = _meta(cell).get("grade_id")
        if any(f.kind == "size" for f in sub.findings.get(gid, [])):
            cell["source"] = "raise NotImplementedError('answer cell too long: not run')"
            sub.answers[gid] = cell["source"]
        elif any(f.kind == "tamper" for f in sub.findings.get(gid, [])):
            cell["source"] = ("# not run: this answer cell breaks the grading rules\n"
                              "raise NotImplementedError('answer cell not run: it breaks "
                              "the grading rules (see the grading report)')")
            sub.answers[gid] = cell["source"]


def policy_zeroes(layout: Layout, sub: Submission) -> dict[str, str]:
    """``{test grade_id: reason}`` for the tests the policy findings cost."""
    kinds = {f.kind for found in sub.findings.values() for f in found}
    if "tamper" in kinds:
        cells = [g for g, found in sub.findings.items() if any(f.kind == "tamper" for f in found)]
        why = f"tampering in answer cell(s) {', '.join(cells)}: every test scores 0"
        return {gid: why for gid in layout.tests}
    zeroed = {}
    for test_id, source in layout.tests.items():
        for gid in sorted(policy.dependencies(source, layout.answers)):
            if sub.findings.get(gid):
                zeroed[test_id] = (f"answer cell `{gid}` breaks the grading rules: "
                                   + "; ".join(map(str, sub.findings[gid])))
    return zeroed


# --------------------------------------------------------------------------------------
# 5: the trusted re-check
# --------------------------------------------------------------------------------------
def recheck(name: str, layout: Layout, subs: list[Submission], scratch: Path,
            cell_timeout: float) -> dict:
    """Run the trusted re-check (``python -m grader.split``) on every submission of one assignment."""
    job = {"setup": layout.setup, "tests": list(layout.tests.items()), "cell_timeout": cell_timeout,
           "submissions": [{"student": s.student, "cells": list(s.answers.items())} for s in subs]}
    job_path, result_path = scratch / f"{name}-job.json", scratch / f"{name}-result.json"
    scratch.mkdir(parents=True, exist_ok=True)
    job_path.write_text(json.dumps(job))
    limit = 60 + len(subs) * (len(layout.tests) + 2) * (cell_timeout + 5)
    try:
        subprocess.run([sys.executable, "-m", "grader.split", str(job_path), str(result_path)],
                       timeout=limit, cwd=course.ROOT, capture_output=True, check=False)
    except subprocess.TimeoutExpired:
        pass
    return json.loads(result_path.read_text()) if result_path.exists() else {}


# --------------------------------------------------------------------------------------
# 6: scores, gradebook, feedback
# --------------------------------------------------------------------------------------
def settle(course_dir: Path, name: str, layout: Layout, sub: Submission, result: dict) -> None:
    """Final score of every test cell: the minimum of nbgrader, re-check and policy."""
    try:
        graded = course.cell_scores(course_dir, name, sub.student)
    except Exception:  # nbgrader could not grade it at all
        graded = {}
        sub.notes.append("nbgrader could not run this notebook; it scores 0")
    zeroed = policy_zeroes(layout, sub)
    rechecked = result.get("tests", {})
    if "grader_error" in result or not result:
        sub.notes.append("the trusted re-check could not run (a grader error: tell your "
                         "instructor); the tests score 0 until it is re-run")
    for gid, points in layout.points.items():
        auto = graded.get(gid, (0.0, points))[0]
        verdict = rechecked.get(gid, {"passed": False, "reason": "not re-checked"})
        if gid in zeroed:
            sub.scores[gid], sub.reasons[gid] = 0.0, zeroed[gid]
        elif not verdict["passed"]:
            sub.scores[gid], sub.reasons[gid] = 0.0, _explain(verdict["reason"], result)
        elif auto < points:
            sub.scores[gid] = auto
            sub.reasons[gid] = ("failed when the notebook was run: "
                                + _cell_error(course_dir, name, sub.student, gid))
        else:
            sub.scores[gid] = auto
    for gid, text in result.get("cell_errors", {}).items():
        if any(f.kind == "tamper" for f in sub.findings.get(gid, [])):
            continue  # stubbed out by the policy; the report already says why
        sub.notes.append(f"answer cell `{gid}` raised an error when it was run:\n{text}")
    if graded:
        _write_manual_scores(course_dir, name, sub, graded)


def _cell_error(course_dir: Path, name: str, student: str, gid: str) -> str:
    """The error a test cell showed in the autograded notebook (its message, not a pointer)."""
    path = course_dir / "autograded" / student / name / f"{name}.ipynb"
    try:
        cells = json.loads(path.read_text())["cells"]
        cell = next(c for c in cells if _meta(c).get("grade_id") == gid)
        error = next(o for o in cell.get("outputs", []) if o.get("output_type") == "error")
    except (OSError, ValueError, StopIteration):
        return "see the cell's output below"
    message = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip().rstrip(":")
    return clean_text(message)[:500]


def _explain(reason: str, result: dict) -> str:
    """Point a ``NameError`` at the answer cell that failed to define the name."""
    failed = result.get("cell_errors", {})
    if not reason.startswith("NameError") or not failed:
        return reason
    first, _, rest = reason.partition("\n")
    causes = "; ".join(f"answer cell `{g}` failed when it was run: "
                       f"{t.strip().splitlines()[-1]}" for g, t in failed.items())
    return f"{first} ({causes})" + (f"\n{rest}" if rest else "")


def _write_manual_scores(course_dir: Path, name: str, sub: Submission, graded: dict) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        for gid, score in sub.scores.items():
            if gid in graded and score != graded[gid][0]:
                grade = gradebook.find_grade(gid, name, name, sub.student)
                grade.manual_score = score
        gradebook.db.commit()


def report_markdown(layout: Layout, sub: Submission) -> str:
    """The grading report a student reads first."""
    total = sum(layout.points.values())
    lines = [f"# Grading report: {sub.score:g} / {total:g} points", ""]
    if sub.rejected:
        lines += [f"**This file could not be graded:** {_escape(sub.rejected)}.", "",
                  "Every test scores 0. Submit the assignment's own notebook, saved by "
                  "Jupyter, with your answers in the answer cells."]
        return "\n".join(lines)
    lines += ["| test | points | result |", "|---|---|---|"]
    for gid, points in layout.points.items():
        score = sub.scores.get(gid, 0.0)
        result = "passed" if gid not in sub.reasons else sub.reasons[gid].splitlines()[0]
        lines.append(f"| `{gid}` | {score:g} / {points:g} | {_escape(result)} |")
    details = [(g, r) for g, r in sub.reasons.items() if "\n" in r]
    for gid, reason in details:
        lines += ["", f"**`{gid}`**:", "", _pre(reason.strip())]
    if sub.findings:
        lines += ["", "**Grading rules broken** (see the rules in the assignment's first cell):"]
        for gid, found in sub.findings.items():
            lines += [f"- answer cell `{gid}`, {_escape(str(f))}" for f in found]
    if sub.notes:
        lines += ["", "**Notes:**"] + [f"- {_escape(n)}" if "\n" not in n else
                                        f"- {_escape(n.splitlines()[0])}\n\n"
                                        f"  {_pre(n.splitlines()[-1])}" for n in sub.notes]
    return clean_text("\n".join(lines))


def _escape(text: str) -> str:
    """Student-controlled text as inert Markdown: HTML escaped, backticks and pipes too."""
    return html.escape(text).replace("`", "&#96;").replace("|", "&#124;").replace("*", "&#42;")


def _pre(text: str) -> str:
    """A block of student-controlled text that no fence or tag inside it can close."""
    return "<pre>" + _escape(text).replace("\n", "&#10;") + "</pre>"


def _insert_report(course_dir: Path, name: str, layout: Layout, sub: Submission) -> bool:
    path = course_dir / "autograded" / sub.student / name / f"{name}.ipynb"
    if not path.exists():
        return False
    os.chmod(path, 0o644)
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = [sanitize_output(o) for o in cell.get("outputs", [])]
    notebook["cells"].insert(0, {"cell_type": "markdown", "id": "grading-report",
                                 "metadata": {}, "source": report_markdown(layout, sub)})
    path.write_text(json.dumps(notebook, indent=1))
    return True


def _cut(text) -> str:
    text = clean_text("".join(text) if isinstance(text, list) else str(text))
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return (text[:MAX_OUTPUT_CHARS] + f"\n[... {len(text) - MAX_OUTPUT_CHARS:,} more characters "
            "cut by the grader ...]\n")


def sanitize_output(output: dict) -> dict:
    """An output a student's code produced, made inert for the feedback page.

    Rich outputs (HTML, SVG, JavaScript, Markdown) are rendered as text only; every text
    is cut to ``MAX_OUTPUT_CHARS``. PNG and JPEG images are kept (they cannot run code).
    """
    out = dict(output)
    if "text" in out:
        out["text"] = _cut(out["text"])
    if isinstance(out.get("data"), dict):
        data = {k: v for k, v in out["data"].items() if k in ("image/png", "image/jpeg")}
        data["text/plain"] = _cut(out["data"].get("text/plain", ""))
        out["data"] = data
    if "traceback" in out:
        out["traceback"] = [_cut(line) for line in out["traceback"]][:200]
    for key in ("ename", "evalue"):
        if key in out:
            out[key] = _cut(out[key])
    return out


def _standalone_feedback(path: Path, layout: Layout, sub: Submission) -> None:
    """Feedback for a file nbgrader never saw (rejected) or could not grade."""
    import markdown_it

    body = markdown_it.MarkdownIt("commonmark").enable("table").render(report_markdown(layout, sub))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>"
                    f"{html.escape(sub.assignment)} feedback</title></head><body>\n{body}"
                    "</body></html>\n", encoding="utf-8", errors="backslashreplace")


# --------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------
def find_submissions(folder: Path) -> list[Submission]:
    """Every ``<student>/<assignment>/`` folder under ``folder``, notebook or not."""
    subs = []
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for assignment_dir in sorted(p for p in student_dir.iterdir() if p.is_dir()):
            name = assignment_dir.name
            subs.append(Submission(student_dir.name, name, assignment_dir / f"{name}.ipynb"))
    return subs


def grade_batch(submissions: Path, out: Path, *, cell_timeout: int | None = None,
                memory_mb: int | None = None, log=print) -> list[Submission]:
    """Grade every submission under ``submissions``; write feedback and grades.csv to ``out``."""
    from grader import sandbox

    sandbox.bwrap_path()
    printer = log
    log = lambda line: printer(clean_text(line))  # noqa: E731  (folder names may hold surrogates)
    (out / "grades.csv").unlink(missing_ok=True)   # a refused batch must leave no stale grades
    subs = find_submissions(submissions)
    known = set(course.assignment_names())
    names = sorted({s.assignment for s in subs} & known)
    cell_timeout = int(cell_timeout or os.environ.get("MLFS_CELL_TIMEOUT", 30))
    env = {"MLFS_CELL_TIMEOUT": str(cell_timeout), "MLFS_KERNEL_LIB": "0"}  # no lib in the kernel
    if memory_mb:
        env["MLFS_MEMORY_MB"] = str(memory_mb)
    os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="mlfs-batch-") as tmp:
        env["MLFS_TMP"] = tmp
        course_dir = course.new_course(Path(tmp) / "course", names)
        for name in names:
            _keep_checks_out_of_the_kernel(course_dir, name)
        course.release_many(course_dir, names)
        empty = Layout([], {}, {}, {}, {})
        for sub in (s for s in subs if s.assignment not in known):
            sub.rejected = f"there is no assignment called '{sub.assignment}' in this course"
            _standalone_feedback(out / "feedback" / sub.student / sub.assignment /
                                 f"{sub.assignment}.html", empty, sub)
            log(f"{sub.assignment:>16} {sub.student:<28}   0.0  {sub.rejected}")
        for name in names:
            reference = Submission(REFERENCE, name, course_dir / "source" / name / f"{name}.ipynb")
            _grade_assignment(course_dir, name, [reference] + [s for s in subs
                                                               if s.assignment == name],
                              Path(tmp), env, cell_timeout, out, log, reference=reference)
        _register_students(course_dir, subs)
    _write_csv(out / "grades.csv", subs)
    _write_details(out / "details.json", subs)
    return subs


def _refusal(name: str, ref: Submission, full: float) -> str:
    """One line: why the reference solution of ``name`` lost points (a failed import first)."""
    texts = [*ref.reasons.values(), *ref.notes, ref.rejected]
    missing = next((t[t.index("ModuleNotFoundError"):].splitlines()[0] for t in texts
                    if "ModuleNotFoundError" in t), "")
    cause = missing or next((t.splitlines()[0] for t in texts if t), "no reason recorded")
    return (f"refusing to grade: the reference solution of '{name}' scores {ref.score:g} / "
            f"{full:g} in the grading sandbox ({cause}); no grades were written")


def _keep_checks_out_of_the_kernel(course_dir: Path, name: str) -> None:
    """Give nbgrader the student half of every test cell (``split.student_half``).

    nbgrader records the test cells when the assignment is released and runs them in the
    student's kernel; with the ``check`` functions gone, that kernel holds no expected
    value and needs no ``lib``. The verdicts come from the trusted re-check, which reads
    the full tests from the repository's source notebook.
    """
    from grader import split

    path = course_dir / "source" / name / f"{name}.ipynb"
    notebook = json.loads(path.read_text())
    tests = [c for c in notebook["cells"] if _meta(c).get("grade") and not _meta(c).get("solution")]
    for cell in tests:
        cell["source"] = split.student_half(_text(cell))
    path.write_text(json.dumps(notebook, indent=1))


def _grade_assignment(course_dir: Path, name: str, subs: list[Submission], tmp: Path,
                      env: dict, cell_timeout: int, out: Path, log,
                      reference: Submission | None = None) -> None:
    source_nb = json.loads((course.ASSIGNMENTS / "source" / name / f"{name}.ipynb").read_text())
    release_nb = json.loads((course_dir / "release" / name / f"{name}.ipynb").read_text())
    layout = Layout.of(source_nb)
    runnable = []
    for sub in subs:
        try:
            rebuilt = _prepare(sub, name, layout, release_nb)
            if rebuilt is not None:
                course.submit(course_dir, sub.student, name, rebuilt)
                runnable.append(sub)
        except Exception as error:  # one malformed file must not stop the batch
            sub.rejected = ("the notebook could not be read safely "
                            f"({type(error).__name__}): submit the file Jupyter saved")
            sub.findings, sub.answers = {}, {}
        if sub.rejected:
            sub.scores = {gid: 0.0 for gid in layout.points}
    started = time.monotonic()
    if runnable:
        course.nbgrader(course_dir, "autograde", name, "--force", check=False, env=env,
                        timeout=120 + len(runnable) * (len(layout.tests) + 2) * (cell_timeout + 10))
    per_sub = (time.monotonic() - started) / max(len(runnable), 1)
    results = recheck(name, layout, runnable, tmp / f"recheck-{name}", cell_timeout)
    for sub in runnable:
        result = results.get(sub.student, {})
        settle(course_dir, name, layout, sub, result)
        sub.seconds = per_sub + float(result.get("seconds", 0.0))
    if reference is not None:
        if reference.score != sum(layout.points.values()) or reference.rejected:
            raise GradingRefused(_refusal(name, reference, sum(layout.points.values())))
        subs.remove(reference)
        runnable.remove(reference)
    graded = [s for s in runnable if _insert_report(course_dir, name, layout, s)]
    if graded:
        course.nbgrader(course_dir, "generate_feedback", name, "--force", check=False, env=env)
    for sub in subs:
        target = out / "feedback" / sub.student / name / f"{name}.html"
        produced = course_dir / "feedback" / sub.student / name / f"{name}.html"
        if sub in graded and produced.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(produced, target)
        else:
            _standalone_feedback(target, layout, sub)
        log(f"{name:>16} {sub.student:<28} {sub.score:5.1f}/{sum(layout.points.values()):g}"
            f"  {sub.seconds:5.1f} s  {sub.rejected or ('ok' if not sub.reasons else 'lost points')}")


def not_regular(path: Path, levels: int = 3) -> str:
    """Why ``path`` (or one of its ``levels - 1`` parents) is not a plain file in a plain folder."""
    for part in [path, *list(path.parents)[:levels - 1]]:
        if part.is_symlink():
            return f"{part.name} is a symbolic link: submit the notebook itself"
    if not path.exists():
        return f"no file {path.name} in the submission folder"
    if not stat.S_ISREG(path.lstat().st_mode):
        return f"{path.name} is not a regular file"
    return ""


def _prepare(sub: Submission, name: str, layout: Layout, release_nb: dict) -> dict | None:
    """Screen, rebuild and police one submission; None (and ``sub.rejected``) if it is refused."""
    sub.rejected = not_regular(sub.path)
    if sub.rejected:
        return None
    notebook, sub.rejected = screen(sub.path.read_bytes(), name, layout)
    if notebook is None:
        return None
    rebuilt = rebuild(notebook, release_nb, layout, sub)
    apply_policy(rebuilt, layout, sub)
    return rebuilt


def _register_students(course_dir: Path, subs: list[Submission]) -> None:
    """Every student appears in the gradebook, even one whose file was rejected."""
    from nbgrader.api import Gradebook

    if not (course_dir / "gradebook.db").exists():
        return
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        for student in sorted({s.student for s in subs}):
            gradebook.update_or_create_student(student)


def _write_csv(path: Path, subs: list[Submission]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        writer = csv.writer(f)
        writer.writerow(["assignment", "student_id", "score", "max_score", "status", "seconds"])
        for sub in sorted(subs, key=lambda s: (s.assignment, s.student)):
            max_score = sum(_points(sub.assignment).values())
            status = ("rejected: " + sub.rejected if sub.rejected else
                      "cheating: policy" if any(f.kind == "tamper" for fs in sub.findings.values()
                                                for f in fs) else "graded")
            writer.writerow([sub.assignment, sub.student, f"{sub.score:g}", f"{max_score:g}",
                             status, f"{sub.seconds:.2f}"])


def _write_details(path: Path, subs: list[Submission]) -> None:
    """Every test cell's score and reason, for the instructor (and the suite)."""
    path.write_text(json.dumps({
        f"{s.student}/{s.assignment}": {
            "student": s.student, "assignment": s.assignment, "score": s.score,
            "rejected": s.rejected, "scores": s.scores, "reasons": s.reasons,
            "findings": {g: [str(f) for f in fs] for g, fs in s.findings.items()},
            "notes": s.notes, "seconds": round(s.seconds, 2)} for s in subs}, indent=1))


def _points(name: str) -> dict[str, float]:
    path = course.ASSIGNMENTS / "source" / name / f"{name}.ipynb"
    if not path.exists():
        return {}
    return Layout.of(json.loads(path.read_text())).points
