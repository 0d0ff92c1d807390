"""The instructor's commands: ``course_cli.py release`` and ``course_cli.py autograde``.

``release`` must write the student version of every assignment (no solution, no hidden
test) and a zip of them; ``autograde`` must grade a folder of submissions in one call,
never stop on a bad one, write one CSV row per student and assignment and a feedback page
for each, and refuse to run without the sandbox.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
from grader import course

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("robustness")]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap (bwrap) is not installed; .ci/run installs it")


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True,
                          text=True, timeout=1200, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = cli("release", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out


def test_release_writes_every_assignment_without_solutions(released):
    names = course.assignment_names()
    for name in names:
        notebook = json.loads((released / "release" / name / f"{name}.ipynb").read_text())
        text = "\n".join("".join(c["source"]) for c in notebook["cells"])
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, name
        assert "raise NotImplementedError()" in text, name
    with zipfile.ZipFile(released / "release.zip") as archive:
        assert sorted(archive.namelist()) == sorted(f"{n}/{n}.ipynb" for n in names)


@needs_bwrap
def test_autograde_grades_a_mixed_folder_and_writes_csv_and_feedback(released, tmp_path):
    subs = tmp_path / "submissions"
    source = ROOT / "assignments" / "source" / "numerics" / "numerics.ipynb"
    placed = {
        ("ada", "numerics"): source.read_bytes(),
        ("bob", "numerics"): (released / "release" / "numerics" / "numerics.ipynb").read_bytes(),
        ("cyd", "numerics"): source.read_bytes()[:300],
        ("dee", "no_such_assignment"): source.read_bytes(),
    }
    for (student, name), data in placed.items():
        path = subs / student / name / f"{name}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    (subs / "eve" / "numerics").mkdir(parents=True)  # a folder without the notebook
    out = tmp_path / "dist"
    proc = cli("autograde", str(subs), "--out", str(out), "--timeout", "10")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "s per submission" in proc.stdout
    with (out / "grades.csv").open() as f:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(f)}
    assert set(rows) == set(placed) | {("eve", "numerics")}
    assert float(rows["ada", "numerics"]["score"]) == float(rows["ada", "numerics"]["max_score"]) == 10
    for key in [("bob", "numerics"), ("cyd", "numerics"), ("dee", "no_such_assignment"),
                ("eve", "numerics")]:
        assert float(rows[key]["score"]) == 0, key
    assert rows["cyd", "numerics"]["status"].startswith("rejected: the file is not valid")
    assert "no assignment called" in rows["dee", "no_such_assignment"]["status"]
    assert "no file numerics.ipynb" in rows["eve", "numerics"]["status"]
    for student, name in rows:
        page = out / "feedback" / student / name / f"{name}.html"
        assert "Grading report" in page.read_text(), (student, name)


def test_autograde_refuses_to_run_without_bubblewrap(tmp_path):
    (tmp_path / "subs" / "ada" / "numerics").mkdir(parents=True)
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))  # no /usr/bin: no bwrap
    proc = cli("autograde", str(tmp_path / "subs"), "--out", str(tmp_path / "dist"), env=env)
    assert proc.returncode == 2
    assert "bubblewrap (bwrap) is not installed" in proc.stderr
