"""The Gradescope export grades like ``make autograde``, end to end.

``make gradescope`` (``python -m grader.gradescope build``) writes one autograder zip per
assignment. The slow test unpacks the ``numerics`` zip into a temporary folder laid out as
Gradescope's ``/autograder`` (``source/`` = the zip, ``run_autograder`` copied next to it,
the student's upload in ``submission/``), runs ``run_autograder`` as a program on three
uploads (the instructor's solution, the blank release, a mutant saved under another
name), checks every ``results.json`` against Gradescope's format, and checks that each
test's score is the one ``course_cli.py autograde`` gives the same notebooks.

Instead of running ``setup.sh`` (apt-get and pip, from the network), the autograder's
Python is a copy of the repository's virtualenv made of hard links (a second or two),
with the course package pointing at the unpacked ``source/`` as ``setup.sh``'s
``pip install -e`` does: ``lib`` then resolves to ``<root>/source/lib``, the folder the
sandbox mounts, exactly as on Gradescope.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
from grader import course
from grader import gradescope

# Its own xdist group: it shares no fixture with the other grading tests.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gradescope")]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap (bwrap) is not installed; .ci/run installs it")
NAME = "numerics"
MUTANT = "logsumexp_without_max"
VISIBILITIES = {"visible", "hidden", "after_due_date", "after_published"}


def check_results_format(results: dict, name: str) -> None:
    """``results`` follows Gradescope's results.json specification, one test per graded cell."""
    layout = gradescope.layout_of(name)
    assert set(results) <= {"score", "execution_time", "output", "visibility",
                            "stdout_visibility", "extra_data", "tests"}, sorted(results)
    assert isinstance(results["score"], float), results["score"]
    assert isinstance(results["output"], str) and isinstance(results["execution_time"], int)
    assert results["stdout_visibility"] in VISIBILITIES
    names = [t["name"] for t in results["tests"]]
    assert names == list(layout.points), f"tests {names}, graded cells {list(layout.points)}"
    for test in results["tests"]:
        assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}, test
        assert isinstance(test["score"], float) and isinstance(test["max_score"], float), test
        assert 0 <= test["score"] <= test["max_score"] == layout.points[test["name"]], test
        assert test["status"] == ("passed" if test["score"] == test["max_score"] else "failed")
        assert isinstance(test["output"], str) and test["output"], test
        hidden = gradescope.HIDDEN_MARK in layout.tests[test["name"]]
        assert test["visibility"] == ("after_due_date" if hidden else "visible"), test
    assert results["score"] == sum(t["score"] for t in results["tests"]), results["score"]


def autograder_python(tmp_path: Path, source: Path) -> Path:
    """A hard-link copy of the virtualenv whose ``lib`` is ``source/lib`` (setup.sh's -e)."""
    venv, original = tmp_path / "venv", Path(sys.prefix).resolve()
    if original.stat().st_dev != tmp_path.stat().st_dev:
        pytest.skip(f"{tmp_path} and the virtualenv {original} are on different file "
                    "systems: no hard-link copy")
    subprocess.run(["cp", "-al", str(original), str(venv)], check=True)
    assert not venv.is_symlink(), "the copy must not be the original virtualenv"
    site = venv / Path(sysconfig.get_path("purelib")).resolve().relative_to(original)
    for link in site.glob("__editable__*mlfs_lib*"):   # unlinks the copy's name only
        link.unlink()
    (site / "mlfs_course_source.pth").write_text(f"{source}\n")
    return venv / "bin" / "python"


def run_autograder(root: Path, python: Path,
                   upload: dict[str, bytes]) -> tuple[dict, tuple[float, float]]:
    """Put ``upload`` ({relative path: bytes}) in ``root/submission``; run run_autograder."""
    for folder in ("submission", "results"):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir()
    for rel, data in upload.items():
        (root / "submission" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / rel).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFS_", "VIRTUAL_ENV"))}
    env.update(AUTOGRADER_ROOT=str(root), PATH=f"{python.parent}{os.pathsep}{env['PATH']}")
    started, cpu = time.monotonic(), cpu_seconds()
    proc = subprocess.run([str(root / "run_autograder")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    seconds = (time.monotonic() - started, cpu_seconds() - cpu)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads((root / "results" / "results.json").read_text()), seconds


def cpu_seconds() -> float:
    """CPU time (user + system) of the finished child processes of this test."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory) -> dict[str, bytes]:
    """The solution, the blank student version and one mutant of the assignment."""
    tmp = tmp_path_factory.mktemp("release")
    release = course.release_many(course.new_course(tmp / "course", [NAME]), [NAME])[NAME]
    source_path = course.ASSIGNMENTS / "source" / NAME / f"{NAME}.ipynb"
    source = json.loads(source_path.read_text())
    mutant = next(m for m in course.mutants(NAME) if m.name == MUTANT)
    return {"solution": source_path.read_bytes(), "blank": release.read_bytes(),
            "mutant": json.dumps(course.apply_mutant(source, mutant), indent=1).encode()}


def test_the_zip_holds_the_two_scripts_and_what_grading_needs(tmp_path):
    archive_path = gradescope.build(NAME, tmp_path)
    assert archive_path == tmp_path / f"{NAME}.zip"
    with zipfile.ZipFile(archive_path) as archive:
        names = set(archive.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
        notebook = archive.read(f"assignments/source/{NAME}/{NAME}.ipynb").decode()
        setup = archive.read("setup.sh").decode()
        runner = archive.read("run_autograder").decode()
    assert {"setup.sh", "run_autograder", "lib/__init__.py", "grader/pipeline.py",
            "grader/gradescope.py", "grader/sandbox.py", "grader/split.py", "grader/exchange.py",
            "assignments/nbgrader_config.py",
            "requirements.txt", "pyproject.toml"} <= names, sorted(names)
    assert modes["setup.sh"] == modes["run_autograder"] == 0o755, modes
    assert gradescope.HIDDEN_MARK in notebook, "the hidden tests must travel with the zip"
    others = {n.split("/")[2] for n in names if n.startswith("assignments/source/")}
    assert others == {NAME}, others
    assert not any("__pycache__" in n or "mutants" in n for n in names)
    assert "apt-get install -y bubblewrap" in setup and "pip install -r" in setup
    assert f"--assignment {NAME}" in runner and "AUTOGRADER_ROOT" in runner
    # the same course gives the same bytes (fixed dates and order)
    again = gradescope.build(NAME, tmp_path / "again")
    assert again.read_bytes() == archive_path.read_bytes()
    with pytest.raises(ValueError, match="name: there is no assignment 'nope'"):
        gradescope.build("nope", tmp_path)


def test_find_notebook_takes_the_assignment_or_the_only_notebook(tmp_path):
    def upload(*paths: str) -> Path:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        for rel in paths:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text("{}")
        folder.mkdir(exist_ok=True)
        return folder

    folder = upload("scratch.ipynb", "hw/numerics.ipynb", "numerics.ipynb")
    assert gradescope.find_notebook(folder, NAME) == (folder / "numerics.ipynb", "")
    folder = upload("numerics (1).ipynb", ".ipynb_checkpoints/numerics-checkpoint.ipynb")
    found, note = gradescope.find_notebook(folder, NAME)
    assert found == folder / "numerics (1).ipynb" and "only notebook" in note, note
    folder = upload("a.ipynb", "b.ipynb")
    assert gradescope.find_notebook(folder, NAME) == (
        None, "2 notebooks submitted (a.ipynb, b.ipynb) and none is numerics.ipynb")
    folder = upload("answers.py")
    assert gradescope.find_notebook(folder, NAME) == (
        None, "no notebook submitted: upload numerics.ipynb")
    folder = upload()
    (folder / "numerics.ipynb").symlink_to(tmp_path / "0" / "numerics.ipynb")
    assert gradescope.find_notebook(folder, NAME)[0] is None, "a symbolic link is never read"


@pytest.mark.parametrize("bwrap", ["missing", "no namespaces"])
def test_without_a_working_sandbox_the_student_gets_zero_and_the_reason(bwrap, tmp_path,
                                                                        monkeypatch):
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / f"{NAME}.ipynb").write_text("{}")
    fake = tmp_path / "bwrap"   # a bubblewrap that the host's kernel refuses namespaces
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(gradescope.shutil, "which",
                        lambda name: None if bwrap == "missing" else str(fake))
    results = gradescope.run(tmp_path, NAME)
    assert results == json.loads((tmp_path / "results" / "results.json").read_text())
    check_results_format(results, NAME)
    why = {"missing": "bubblewrap (bwrap) is not installed",
           "no namespaces": "needs unprivileged user namespaces): bwrap: No permissions"}[bwrap]
    assert results["score"] == 0.0 and why in results["output"], results["output"]
    assert all(t["output"].startswith("not graded: bubblewrap") for t in results["tests"])


@pytest.mark.parametrize("upload", ["nothing", "refused"])
def test_an_ungraded_submission_gets_zero_and_the_reason(upload, tmp_path, monkeypatch):
    """How ``run`` reports what ``grade_batch`` decided (a fake batch: no sandbox needed)."""
    from grader import pipeline

    (tmp_path / "submission").mkdir()
    if upload == "refused":
        (tmp_path / "submission" / f"{NAME}.ipynb").write_text("{}")
    refusal = "refusing to grade: the reference solution of 'numerics' scores 0 / 10"
    points = gradescope.layout_of(NAME).points

    def fake_batch(submissions: Path, out: Path) -> list:
        folder = submissions / gradescope.STUDENT / NAME
        assert folder.is_dir() and (folder / f"{NAME}.ipynb").exists() == (upload != "nothing")
        if upload == "refused":
            raise pipeline.GradingRefused(refusal)
        return [pipeline.Submission(gradescope.STUDENT, NAME, folder / f"{NAME}.ipynb",
                                   rejected=f"no file {NAME}.ipynb in the submission folder",
                                   scores={gid: 0.0 for gid in points})]

    monkeypatch.setattr(gradescope, "sandbox_works", lambda: "")
    monkeypatch.setattr(pipeline, "grade_batch", fake_batch)
    results = gradescope.run(tmp_path, NAME)
    check_results_format(results, NAME)
    why = {"nothing": f"no notebook submitted: upload {NAME}.ipynb", "refused": refusal}[upload]
    assert results["score"] == 0.0 and f"could not be graded: {why}." in results["output"]
    assert all(t["output"] == f"not graded: {why}" for t in results["tests"]), results


def test_run_autograder_writes_results_even_when_python_fails(tmp_path):
    gradescope.unpack(gradescope.build(NAME, tmp_path / "dist"), tmp_path / "source")
    shutil.copy2(tmp_path / "source" / "run_autograder", tmp_path / "run_autograder")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").write_text("#!/bin/sh\nexit 7\n")
    (tmp_path / "bin" / "python3").chmod(0o755)
    env = dict(os.environ, AUTOGRADER_ROOT=str(tmp_path),
               PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([str(tmp_path / "run_autograder")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7, proc.stderr
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["score"] == 0.0 and "exit status 7" in results["output"], results


@needs_bwrap
def test_run_autograder_gives_the_scores_of_make_autograde(notebooks, tmp_path):
    root = tmp_path / "autograder"
    gradescope.unpack(gradescope.build(NAME, tmp_path / "dist"), root / "source")
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")  # as Gradescope does
    python = autograder_python(tmp_path, root / "source")
    uploads = {"solution": {f"{NAME}.ipynb": notebooks["solution"]},
               "blank": {f"{NAME}.ipynb": notebooks["blank"]},
               "mutant": {f"{NAME} (1).ipynb": notebooks["mutant"], "notes.txt": b"draft"}}
    results, seconds = {}, {}
    for student, upload in uploads.items():
        results[student], seconds[student] = run_autograder(root, python, upload)
        check_results_format(results[student], NAME)
    print("run_autograder per submission, (wall s, CPU s):",
          {s: (round(w, 1), round(c, 1)) for s, (w, c) in seconds.items()})

    # make autograde on the same three notebooks, one batch
    batch = tmp_path / "batch"
    for student in uploads:
        path = batch / student / NAME / f"{NAME}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_bytes(notebooks[student])
    out = tmp_path / "dist"
    cpu = cpu_seconds()
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "autograde",
                           str(batch), "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    print("make autograde:", proc.stdout.strip().splitlines()[-1],
          f"CPU {cpu_seconds() - cpu:.1f} s")
    details = json.loads((out / "details.json").read_text())
    for student in uploads:
        expected = details[f"{student}/{NAME}"]
        got = {t["name"]: t["score"] for t in results[student]["tests"]}
        assert got == expected["scores"], f"{student}: Gradescope {got}, make autograde {expected}"
        for test in results[student]["tests"]:
            if test["name"] in expected["reasons"]:
                assert test["output"] == expected["reasons"][test["name"]], test
    full = sum(gradescope.layout_of(NAME).points.values())
    assert results["solution"]["score"] == full and results["blank"]["score"] == 0.0
    mutant = next(m for m in course.mutants(NAME) if m.name == MUTANT)
    lost = {t["name"] for t in results["mutant"]["tests"] if t["status"] == "failed"}
    assert lost == set(mutant.fails), f"the mutant lost {lost}, its header says {mutant.fails}"
    assert "only notebook" in results["mutant"]["output"], results["mutant"]["output"]
