"""Generate the corpus of good, partial, broken and hostile submissions from the releases.

    python tests/make_bad_submissions.py OUT [--assignments numerics calibration] [--small calibration]

Every case is derived from an assignment's own release (student version) or source
(instructor solution) by a rule written below, never by hand-editing JSON, so the corpus
follows the assignments as they change. OUT receives ``<student>/<assignment>/<assignment>.ipynb``
(the layout ``make autograde`` grades) and ``manifest.json``: for each student the case,
what it tries, and the exact score every test cell must get.

The expected scores use one fact about a case built on the solution: breaking one answer
cell costs exactly the tests that use it. The cell broken is a *leaf* (no other answer
uses it) with the fewest dependent tests, so the expectation does not over-count.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the grader package sits at the root
from grader import course  # noqa: E402
from grader import pipeline  # noqa: E402
from grader import policy  # noqa: E402


class Assignment:
    """An assignment's source, release and the cells the cases aim at."""

    def __init__(self, name: str, source: dict, release: dict):
        self.name, self.source, self.release = name, source, release
        self.layout = pipeline.Layout.of(source)
        self.full = dict(self.layout.points)
        self.deps = {t: policy.dependencies(src, self.layout.answers)
                     for t, src in self.layout.tests.items()}
        self.target = self._leaf_answer()

    def _leaf_answer(self) -> str:
        """The answer cell no other answer uses, with the fewest dependent tests."""
        used_by_others = set()
        for gid, src in self.layout.answers.items():
            others = {g: s for g, s in self.layout.answers.items() if g != gid}
            used_by_others |= policy.dependencies(src, others)
        leaves = [g for g in self.layout.answers if g not in used_by_others]
        return min(leaves or list(self.layout.answers),
                   key=lambda g: sum(g in d for d in self.deps.values()))

    def without(self, gid: str) -> dict[str, float]:
        """Expected scores when answer ``gid`` is broken and the others are right."""
        return {t: 0.0 if gid in self.deps[t] else p for t, p in self.full.items()}

    @property
    def zero(self) -> dict[str, float]:
        return {t: 0.0 for t in self.full}

    def solution(self) -> dict:
        return copy.deepcopy(self.source)

    def blank(self) -> dict:
        return copy.deepcopy(self.release)

    def with_answer(self, notebook: dict, gid: str, code: str) -> dict:
        for cell in notebook["cells"]:
            if pipeline._meta(cell).get("grade_id") == gid:
                cell["source"] = code
        return notebook

    def prefixed(self, gid: str, code: str, base: dict | None = None) -> dict:
        """The solution (or ``base``) with ``code`` put before answer ``gid``'s own code."""
        notebook = base or self.solution()
        original = self.layout.answers[gid] if base is None else next(
            pipeline._text(c) for c in notebook["cells"] if pipeline._meta(c).get("grade_id") == gid)
        return self.with_answer(notebook, gid, code + "\n" + original)


def _drop(notebook: dict, keep) -> dict:
    notebook["cells"] = [c for c in notebook["cells"] if keep(pipeline._meta(c))]
    return notebook


def cases(a: Assignment, other: Assignment | None, small: bool) -> list[tuple]:
    """``(case, kind, description, notebook or bytes, expected scores, feedback words)``."""
    t = a.target
    first = next(iter(a.layout.answers))
    sol_text = json.dumps(a.solution(), indent=1)
    out = [
        ("good", "good", "the instructor's solution", a.solution(), a.full, ["passed"]),
        ("blank", "partial", "the release, unanswered", a.blank(), a.zero, ["NotImplementedError"]),
        ("one_answer_missing", "partial", f"the solution with answer `{t}` left blank",
         a.with_answer(a.solution(), t, "raise NotImplementedError()"), a.without(t),
         ["NotImplementedError"]),
        ("syntax_error", "broken", f"a syntax error in answer `{t}`",
         a.with_answer(a.solution(), t, "def broken(:\n    return\n"), a.without(t),
         ["SyntaxError"]),
        ("truncated_json", "broken", "the notebook file cut in half (corrupt JSON)",
         sol_text[: len(sol_text) // 2].encode(), a.zero, ["not valid notebook JSON"]),
        ("empty_file", "broken", "an empty file", b"", a.zero, ["the file is empty"]),
        ("other_assignment", "broken", "the notebook of another assignment, fully solved",
         other.solution() if other else {"cells": [], "metadata": {}, "nbformat": 4,
                                          "nbformat_minor": 5},
         a.zero, ["another assignment"]),
        ("pasted_outputs", "hostile", "the blank release with another student's passing "
         "outputs pasted into every test cell", _paste_outputs(a.blank()), a.zero,
         ["outputs saved in the notebook are ignored"]),
        ("patch_numpy_allclose", "hostile", "answer replaces numpy.allclose with "
         "`lambda *a, **k: True` and returns zeros",
         a.with_answer(a.blank(), first, "import numpy as np\nnp.allclose = lambda *a, **k: True\n"),
         a.zero, ["patching a module"]),
    ]
    if small:
        return out
    out += [
        ("exception_at_import", "broken", f"answer `{t}` raises before defining anything",
         a.prefixed(t, "raise RuntimeError('boom while the answer cell is run')"),
         a.without(t), ["boom while the answer cell is run"]),
        ("infinite_loop", "broken", f"answer `{t}` loops forever when run",
         a.prefixed(t, "while True:\n    pass"), a.without(t), ["timeout", "CellTimeoutError"]),
        ("memory_bomb", "broken", f"answer `{t}` allocates memory without bound",
         a.prefixed(t, "import numpy as np\n_hog = []\nwhile True:\n"
                       "    _hog.append(np.empty(10**9))"), a.without(t), ["MemoryError"]),
        ("solution_cells_deleted", "broken", "every answer cell deleted",
         _drop(a.solution(), lambda m: not m.get("solution")), a.zero, ["is missing"]),
        ("test_cells_edited", "hostile", "blank answers, every test cell replaced by `pass`",
         _edit_tests(a.blank()), a.zero, ["was edited: the original is used"]),
        ("test_cells_deleted", "hostile", "blank answers, every test cell deleted",
         _drop(a.blank(), lambda m: not m.get("grade")), a.zero, ["was deleted"]),
        ("cell_ids_changed", "good", "the solution with every cell id changed",
         _change_ids(a.solution()), a.full, ["cell ids were changed"]),
        ("patch_numpy_testing", "hostile", "answer replaces numpy.testing.assert_allclose",
         a.with_answer(a.blank(), first, "import numpy\nnumpy.testing.assert_allclose = "
                                        "lambda *a, **k: None\n"), a.zero, ["patching a module"]),
        ("patch_torch", "hostile", "answer replaces torch.allclose and "
         "torch.testing.assert_close", a.with_answer(
             a.blank(), first, "import torch\ntorch.allclose = lambda *a, **k: True\n"
                               "torch.testing.assert_close = lambda *a, **k: None\n"),
         a.zero, ["patching a module"]),
        ("patch_builtins", "hostile", "answer rebinds builtins so that every assert passes",
         a.with_answer(a.blank(), first, "import builtins\nbuiltins.AssertionError = type("
                                        "'Quiet', (Exception,), {})\n"
                                        "__builtins__['abs'] = lambda x: 0\n"),
         a.zero, ["builtins"]),
        ("redefine_helper", "hostile", "answer redefines the setup's test helpers to do nothing",
         a.with_answer(a.blank(), first, "\n".join(
             f"def {h}(*args, **kwargs):\n    return True\n" for h in _helpers(a)) or "pass"),
         a.zero, ["redefines"]),
        ("patch_evading_policy", "hostile", "answer patches numpy.allclose through a list "
         "and a function argument, which the static policy cannot see; answers are wrong",
         _evasive_patch(a), a.zero, []),
        ("read_instructor_files", "hostile", f"answer `{t}` works only if it can read the "
         "instructor's source notebook, the gradebook or lib's reference answers from disk",
         a.prefixed(t, _reader(a.name)), a.without(t), ["could not read"]),
        ("write_outside", "hostile", f"answer `{t}` writes files outside its folder "
         "(course root, repository, submission folder) and fails if it cannot",
         a.prefixed(t, _writer(a.name)), a.without(t), ["Read-only file system"]),
        ("import_lib", "hostile", f"answer `{t}` returns the reference implementation "
         "imported from lib", a.prefixed(t, _lib_import(a)), a.without(t), ["lib"]),
    ]
    out += _malformed_and_injected(a)
    for mutant in course.mutants(a.name)[:2]:
        expect = {g: (0.0 if g in mutant.fails else None) for g in a.full}
        out.append((f"mutant_{mutant.name}", "partial", mutant.description,
                    course.apply_mutant(a.source, mutant), expect, []))
    return out


def _malformed_and_injected(a: Assignment) -> list[tuple]:
    """Issue 23: files that used to abort the batch, a symlink, a huge cell, HTML injection,
    a flood of output and a full /tmp."""
    t = a.target
    sol = json.dumps(a.solution(), indent=1)
    with_list_id = a.solution()
    next(c for c in with_list_id["cells"] if pipeline._meta(c).get("grade_id") == t)[
        "metadata"]["nbgrader"]["grade_id"] = [t]
    with_int_source = a.solution()
    next(c for c in with_int_source["cells"] if pipeline._meta(c).get("grade_id") == t)[
        "source"] = ["x = 1\n", 5]
    surrogate = json.dumps(a.prefixed(t, "# a lone surrogate: \ud800"), indent=1).encode()
    chain = "_v0 = 0\n" + "".join(f"_v{i} = _v{i - 1} + 1\n" for i in range(1, 3000))
    injection = ("class _Shiny:\n    def _repr_html_(self):\n"
                 "        return '<script>alert(1)</script><img src=x onerror=alert(2)>'\n"
                 "display(_Shiny())\n"
                 "raise RuntimeError('```\\n</pre><script>alert(3)</script>\\n"
                 "# Grading report: 99 / 99 points')")
    return [
        ("deep_json", "broken", "JSON nested 100,000 deep (RecursionError in the reader)",
         b"[" * 100_000 + b"]" * 100_000, a.zero, ["RecursionError"]),
        ("grade_id_is_a_list", "broken", f"the grade_id of answer `{t}` is a list (unhashable)",
         with_list_id, a.zero, ["could not be read safely"]),
        ("int_in_source", "broken", f"an int inside the source list of answer `{t}`",
         with_int_source, a.zero, ["could not be read safely"]),
        ("lone_surrogate_in_source", "good", "the solution with a lone surrogate in a comment",
         surrogate, a.full, ["Grading report"]),
        ("lone_surrogate_in_exception", "broken", f"answer `{t}` raises an exception whose "
         "message is a lone surrogate", a.prefixed(t, "raise RuntimeError('\\ud800')"),
         a.without(t), ["RuntimeError"]),
        ("huge_expression", "hostile", f"answer `{t}` holds a 100,000-term expression",
         a.prefixed(t, "_x = " + "1+" * 100_000 + "1"), a.without(t), ["more than the"]),
        ("quadratic_policy_chain", "hostile", f"answer `{t}` is a 3,000-line chain of "
         "assignments (quadratic time in a naive policy)", a.prefixed(t, chain),
         a.without(t), ["more than the"]),
        ("html_injection", "hostile", f"answer `{t}` displays raw HTML and raises an exception "
         "that closes the report's code block", a.prefixed(t, injection), a.without(t),
         ["RuntimeError"]),
        ("symlink_to_good", "hostile", "the submission is a symbolic link to a student's "
         "graded notebook", ("symlink", f"{a.name}-good"), a.zero, ["symbolic link"]),
        ("flood_output", "hostile", f"answer `{t}` prints 64 MiB before defining a correct "
         "function", a.prefixed(t, "for _ in range(64):\n    print('x' * 2**20)"), a.full,
         ["output was cut"]),
        ("fill_tmp", "hostile", f"answer `{t}` writes 1 GiB of files to /tmp",
         a.prefixed(t, "import numpy as np\n_block = np.zeros(2**24)\nfor _i in range(8):\n"
                       "    _block.tofile(f'/tmp/fill{_i}')"), a.without(t), ["OSError"]),
    ]


def _helpers(a: Assignment) -> list[str]:
    """Functions the setup cells define (the tests' helpers, e.g. ``check_close``)."""
    import ast
    return [n.name for s in a.layout.setup for n in ast.parse(s).body
            if isinstance(n, ast.FunctionDef)]


def _paste_outputs(notebook: dict) -> dict:
    for count, cell in enumerate(notebook["cells"], start=1):
        if cell["cell_type"] == "code":
            cell["execution_count"] = count
            cell["outputs"] = [{"output_type": "stream", "name": "stdout",
                                "text": "all tests passed (output of another student's run)\n"}]
    return notebook


def _edit_tests(notebook: dict) -> dict:
    for cell in notebook["cells"]:
        if pipeline._meta(cell).get("grade"):
            cell["source"] = "pass  # the tests were here"
    return notebook


def _change_ids(notebook: dict) -> dict:
    for number, cell in enumerate(notebook["cells"]):
        cell["id"] = f"renamed-{number}"
    return notebook


def _evasive_patch(a: Assignment) -> dict:
    """Wrong answers plus a patch of numpy through an alias the AST check does not follow."""
    notebook = a.blank()
    code = ("import numpy\n\n\ndef _loosen(module):\n    module.allclose = lambda *a, **k: True\n"
            "    module.testing.assert_allclose = lambda *a, **k: None\n\n\n"
            "_box = [numpy]\n_loosen(_box[0])\n")
    first = next(iter(a.layout.answers))
    for gid in a.layout.answers:
        names = sorted(policy.top_level_names(a.layout.answers[gid]))
        stubs = "\n".join(f"def {n}(*args, **kwargs):\n    return 0.0\n" for n in names)
        a.with_answer(notebook, gid, (code if gid == first else "") + stubs)
    return notebook


def _reader(name: str) -> str:
    candidates = [f"../../../source/{name}/{name}.ipynb", "../../../gradebook.db",
                  str(ROOT / "assignments" / "source" / name / f"{name}.ipynb"),
                  str(ROOT / "assignments" / "authoring" / f"{name}.py"),
                  str(ROOT / "lib" / "numerics.py")]   # the reference answers
    return ("import numpy as np\n_stolen = None\n"
            f"for _path in {candidates!r}:\n"
            "    try:\n        _stolen = np.fromfile(_path, dtype=np.uint8)\n        break\n"
            "    except OSError:\n        pass\n"
            "if _stolen is None:\n"
            "    raise FileNotFoundError('could not read the instructor files')\n")


def _writer(name: str) -> str:
    targets = ["../../../pwned-course.txt", str(ROOT / "pwned-repo.txt"), "pwned-here.txt"]
    return ("import numpy as np\n"
            f"for _path in {targets!r}:\n"
            "    np.savetxt(_path, np.zeros(1))  # raises where the sandbox forbids the write\n")


def _lib_import(a: Assignment) -> str:
    names = sorted(policy.top_level_names(a.layout.answers[a.target]))
    return "\n".join(f"from lib import {n}  # the reference answer" for n in names[:1]) or \
        "import lib"


def build(out: Path, names: list[str], small: set[str], course_dir: Path | None = None) -> dict:
    """Write the corpus for ``names`` under ``out``; return the manifest."""
    with tempfile.TemporaryDirectory(prefix="mlfs-corpus-") as tmp:
        root = course_dir or course.new_course(Path(tmp) / "course", names)
        missing = [n for n in names if not (root / "release" / n / f"{n}.ipynb").exists()]
        if missing:
            course.release_many(root, missing)
        loaded = {}
        for name in names:
            release = root / "release" / name / f"{name}.ipynb"
            loaded[name] = Assignment(name, json.loads((root / "source" / name / f"{name}.ipynb")
                                                       .read_text()),
                                      json.loads(release.read_text()))
    manifest = {}
    for name, a in loaded.items():
        other = next((o for n, o in loaded.items() if n != name), None)
        for case, kind, description, notebook, expect, words in cases(a, other, name in small):
            student = f"{name}-{case}"
            path = out / student / name / f"{name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(notebook, tuple):                 # ("symlink", other student)
                path.symlink_to(out / notebook[1] / name / f"{name}.ipynb")
            else:
                path.write_bytes(notebook if isinstance(notebook, bytes)
                                 else json.dumps(notebook, indent=1).encode())
            manifest[student] = {"assignment": name, "case": case, "kind": kind,
                                 "description": description, "expect": expect,
                                 "feedback_contains": words}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--assignments", nargs="+", default=["numerics", "calibration"])
    parser.add_argument("--small", nargs="*", default=["calibration"],
                        help="assignments that get only the short list of cases")
    args = parser.parse_args()
    manifest = build(args.out, args.assignments, set(args.small))
    print(f"wrote {len(manifest)} submissions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
