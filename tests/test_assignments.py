"""Every assignment through the real nbgrader pipeline, on a temporary copy of the course.

For each assignment: ``generate_assignment`` (the release hides solutions and hidden
tests), ``autograde`` of the instructor's solution (full marks), of the blank release
(zero on every graded cell, no crash) and of every mutant (each test the mutant names
scores zero, every other test keeps full marks), then ``export``. All submissions of one assignment are graded by a single
``nbgrader autograde`` call, as an instructor would grade a class.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader import course

pytestmark = pytest.mark.slow
# Each assignment's tests share one graded course (``graded``, cached per process): under
# xdist they form one group, so that one worker grades each assignment once.
NAMES = [pytest.param(name, id=name, marks=pytest.mark.xdist_group(f"assignment-{name}"))
         for name in course.assignment_names()]
MUTANTS = [pytest.param(m, id=f"{m.assignment}/{m.name}",
                        marks=pytest.mark.xdist_group(f"assignment-{m.assignment}"))
           for name in course.assignment_names() for m in course.mutants(name)]


@dataclass
class Graded:
    course: Path
    source: dict
    release: dict
    csv_rows: list[dict]


_GRADED: dict[str, Graded] = {}


def graded(name: str, tmp_path_factory) -> Graded:
    """Run the pipeline for ``name`` once per test process and keep the result."""
    if name not in _GRADED:
        root = course.new_course(tmp_path_factory.mktemp(f"course-{name}"), [name])
        source = json.loads((root / "source" / name / f"{name}.ipynb").read_text())
        release_path = course.release(root, name)
        course.submit(root, "solution", name, root / "source" / name / f"{name}.ipynb")
        course.submit(root, "blank", name, release_path)
        for mutant in course.mutants(name):
            course.submit(root, mutant.student, name, course.apply_mutant(source, mutant))
        course.autograde(root, name)
        csv_path = course.export_grades(root, root / "grades.csv")
        with csv_path.open() as f:
            rows = list(csv.DictReader(f))
        _GRADED[name] = Graded(root, source, json.loads(release_path.read_text()), rows)
    return _GRADED[name]


def test_every_assignment_notebook_matches_its_authoring_file():
    script = Path(__file__).resolve().parents[1] / "tools" / "build_assignments.py"
    proc = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _code_lines_between(source: str, begin: str, end: str) -> list[str]:
    """The non-trivial lines of ``source`` that lie between the two markers."""
    inside, found = False, []
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside and len(line.strip()) > 12:
            found.append(line.strip())
    return found


def _outside_markers(source: str) -> list[str]:
    """The lines of ``source`` outside every solution and hidden-test region."""
    inside, found = False, []
    for line in source.splitlines():
        if "### BEGIN SOLUTION" in line or "### BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "### END SOLUTION" in line or "### END HIDDEN TESTS" in line:
            inside = False
        elif not inside:
            found.append(line)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_release_contains_no_solution_and_no_hidden_test(name, tmp_path_factory):
    result = graded(name, tmp_path_factory)
    released = "\n".join("".join(c["source"]) for c in result.release["cells"])
    assert "BEGIN SOLUTION" not in released and "HIDDEN TESTS" not in released
    secret = []
    for cell in result.source["cells"]:
        text = "".join(cell["source"])
        secret += _code_lines_between(text, "### BEGIN SOLUTION", "### END SOLUTION")
        secret += _code_lines_between(text, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
    assert secret, "the source notebook has no solution or hidden test to hide"
    # a line that the visible part of the source also has (a hidden test's `run` that calls
    # the function as the visible one does) gives nothing away
    public = {line.strip() for cell in result.source["cells"]
              for line in _outside_markers("".join(cell["source"]))}
    leaked = [line for line in secret if line in released and line not in public]
    assert not leaked, f"the release shows instructor-only lines: {leaked[:5]}"


@pytest.mark.parametrize("name", NAMES)
def test_solution_gets_full_marks(name, tmp_path_factory):
    scores = course.cell_scores(graded(name, tmp_path_factory).course, name, "solution")
    assert scores, "no graded cells"
    lost = {cell: s for cell, s in scores.items() if s[0] != s[1]}
    assert not lost, f"the instructor's solution loses points: {lost}"


@pytest.mark.parametrize("name", NAMES)
def test_blank_release_scores_zero_on_every_graded_cell(name, tmp_path_factory):
    scores = course.cell_scores(graded(name, tmp_path_factory).course, name, "blank")
    earned = {cell: s for cell, s in scores.items() if s[0] != 0}
    assert not earned, f"an unanswered notebook earns points: {earned}"


@pytest.mark.parametrize("name", NAMES)
def test_each_assignment_has_at_least_four_mutants(name):
    assert len(course.mutants(name)) >= 4


@pytest.mark.parametrize("mutant", MUTANTS)
def test_mutant_loses_exactly_the_points_of_the_tests_aimed_at_it(mutant, tmp_path_factory):
    """Every test the mutant names scores zero; every other test keeps its full marks.

    The second half catches cascading zeros: a test that fails only because another test
    failed (a shared name, a crash carried over) costs points the mistake did not earn.
    """
    result = graded(mutant.assignment, tmp_path_factory)
    scores = course.cell_scores(result.course, mutant.assignment, mutant.student)
    unknown = set(mutant.fails) - scores.keys()
    assert not unknown, f"{mutant.name} names test cells that do not exist: {unknown}"
    survived = {cell: scores[cell] for cell in mutant.fails if scores[cell][0] != 0}
    assert not survived, f"'{mutant.description}' is not caught by {sorted(survived)}"
    collateral = {cell: s for cell, s in scores.items()
                  if cell not in mutant.fails and s[0] != s[1]}
    assert not collateral, (f"{mutant.name} also loses points on tests its 'fails:' line does "
                            f"not name (score, max): {collateral}")


def test_no_test_cell_reads_a_name_another_test_cell_binds():
    """Issue 21: shared helpers live in setup cells, so one failed test cannot zero another."""
    from grader import cell_isolation

    report = cell_isolation.check_paths(
        [course.ASSIGNMENTS / "source" / n / f"{n}.ipynb" for n in course.assignment_names()])
    assert not report, json.dumps(report, indent=1)


@pytest.mark.parametrize("name", NAMES)
def test_export_has_one_row_per_submission_with_the_right_totals(name, tmp_path_factory):
    result = graded(name, tmp_path_factory)
    rows = {row["student_id"]: row for row in result.csv_rows}
    expected = {"solution", "blank"} | {m.student for m in course.mutants(name)}
    assert set(rows) == expected
    full = float(rows["solution"]["max_score"])
    assert float(rows["solution"]["score"]) == full > 0
    assert float(rows["blank"]["score"]) == 0.0
    for mutant in course.mutants(name):
        assert float(rows[mutant.student]["score"]) < full, mutant.name


@pytest.mark.parametrize("name", NAMES)
def test_points_in_the_prose_match_the_graded_cells(name, tmp_path_factory):
    """The introduction's 'Points: N in all' is the sum of the test cells' points."""
    result = graded(name, tmp_path_factory)
    intro = "".join(result.source["cells"][0]["source"])
    match = re.search(r"Points: ([\d.]+) in all", intro)
    assert match, "the first cell should state 'Points: N in all'"
    total = sum(c["metadata"]["nbgrader"].get("points", 0) for c in result.source["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade"))
    assert float(match.group(1)) == total
