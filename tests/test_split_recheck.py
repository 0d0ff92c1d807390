"""Every graded test is make / run / check, and split across processes it grades as in one.

The trusted re-check (``grader/split.py``) runs ``make`` and ``check`` in the grader and
only ``run`` beside the student's code, with plain arrays crossing each way. These tests
run that split in-process (``InProcessStudent``: separate namespaces, every value through
``grader.exchange``) on the instructor's solution, the blank release and every mutant of
every assignment, and require the verdicts nbgrader's one-process run gives: full marks,
zero, and exactly the tests each mutant names. The sandboxed process is exercised by the
hostile corpus in ``test_autograder_robustness.py``.
"""
from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
from grader import course
from grader import pipeline

from grader import exchange, split  # noqa: E402

NAMES = course.assignment_names()
_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$",
                       re.DOTALL | re.MULTILINE)


def _layout(name: str) -> pipeline.Layout:
    path = course.ASSIGNMENTS / "source" / name / f"{name}.ipynb"
    return pipeline.Layout.of(json.loads(path.read_text()))


def _blank(source: str) -> str:
    """What the release shows in place of the solution (nbgrader's stub)."""
    return _SOLUTION.sub(lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError()",
                         source)


def _verdicts(layout: pipeline.Layout, answers: dict[str, str]) -> dict[str, str]:
    student = split.InProcessStudent(layout.setup, list(answers.items()))
    return split.run_tests(layout.setup, list(layout.tests.items()), student)


@pytest.mark.parametrize("name", NAMES)
def test_every_test_cell_ends_in_make_run_check(name):
    layout = _layout(name)
    plain = [gid for gid, source in layout.tests.items() if not split.is_split(source)]
    assert not plain, f"test cells without a check(make(), run(**make())) line: {plain}"


def _imports(source: str) -> set[str]:
    """Every module a cell imports, at any depth (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("name", NAMES)
def test_lib_stays_on_the_trusted_side(name):
    """The student's kernel and process have no `lib`: only `check` functions may use it."""
    layout = _layout(name)
    assert not any("lib" in _imports(src) for src in layout.setup), "a setup cell imports lib"
    uses = [gid for gid, src in layout.tests.items() if "lib" in _imports(split.student_half(src))]
    assert not uses, f"make or run imports lib in {uses} (only check functions may)"


@pytest.mark.parametrize("name", NAMES)
def test_split_gives_the_solution_full_marks_and_the_blank_release_zero(name):
    layout = _layout(name)
    solution = _verdicts(layout, layout.answers)
    lost = {gid: why for gid, why in solution.items() if why}
    assert not lost, f"the solution fails under the split re-check: {lost}"
    blank = _verdicts(layout, {gid: _blank(src) for gid, src in layout.answers.items()})
    earned = [gid for gid, why in blank.items() if not why]
    assert not earned, f"the blank release passes {earned}"


@pytest.mark.parametrize("name", NAMES)
def test_split_fails_exactly_the_tests_each_mutant_names(name):
    layout = _layout(name)
    wrong = {}
    for mutant in course.mutants(name):
        answers = dict(layout.answers, **{mutant.replaces: mutant.code})
        failed = {gid for gid, why in _verdicts(layout, answers).items() if why}
        if failed != set(mutant.fails):
            wrong[mutant.name] = {"named": sorted(mutant.fails), "failed": sorted(failed)}
    assert not wrong, json.dumps(wrong, indent=1)


def test_exchange_round_trips_data_and_refuses_objects():
    import numpy as np
    import torch

    tree = {"x": np.arange(6.0).reshape(2, 3), "n": 3, "f": float("nan"), "s": "ok", "none": None,
            "t": torch.ones(2, dtype=torch.bfloat16), "g": torch.zeros(3, requires_grad=True),
            "pair": (np.float32(1.5), [True, -2]), "b": np.array([True, False])}
    back = exchange.decode(exchange.encode(tree))
    assert np.array_equal(back["x"], tree["x"]) and back["n"] == 3 and np.isnan(back["f"])
    assert back["t"].dtype == torch.bfloat16 and back["g"].requires_grad and back["g"].is_leaf
    assert isinstance(back["pair"], tuple) and back["pair"][0].dtype == np.float32
    assert back["pair"][1] == [True, -2] and back["s"] == "ok" and back["none"] is None

    class Liar:
        def __eq__(self, other):
            return True

    for value in (Liar(), np.array([Liar()], dtype=object), {1: 2}, lambda: 0):
        with pytest.raises(exchange.NotData):
            exchange.encode({"out": value})
    with pytest.raises(ValueError, match="not an archive"):
        exchange.decode(b"PK\x03\x04 not a zip")
