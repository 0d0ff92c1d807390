"""Broken, hostile and cheating submissions are graded fairly, and nothing is lost.

Fast tests check each defence on its own: the static policy, the bubblewrap sandbox
(no reading the course, no writing outside the scratch folder, no network, a memory cap)
and the trusted re-check (a patched NumPy in the student's process cannot fool the
comparison; generators, in-place arrays and autograd still behave). The slow tests grade
the whole corpus of ``tests/make_bad_submissions.py`` in one ``course_cli.py autograde``
command and check every student's score, feedback and CSV row, and check that a kernel
that dies keeps the points earned before it died.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from grader import course
from grader import policy
from grader import split
from grader import sandbox

# The tests of the graded batch share one module-scoped fixture: under xdist they run on
# one worker (the "robustness" group, with the other slow grading tests); the rest spread.
in_batch_group = pytest.mark.xdist_group("robustness")
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap (bwrap) is not installed; .ci/run installs it")
SETUP = {"np", "check_close"}


# --------------------------------------------------------------------------------------
# The static policy
# --------------------------------------------------------------------------------------
CHEATS = {
    "np.allclose = lambda *a, **k: True": "tamper",
    "import numpy\nnumpy.testing.assert_allclose = lambda *a, **k: None": "tamper",
    "t = np.testing\nt.assert_allclose = print": "tamper",
    "import torch\ntorch.allclose = lambda *a, **k: True": "tamper",
    "import torch\ntorch.testing.assert_close = lambda *a, **k: None": "tamper",
    "import builtins\nbuiltins.abs = None": "tamper",
    "__builtins__['abs'] = None": "tamper",
    "def check_close(*a, **k):\n    pass": "tamper",
    "def f():\n    global check_close\n    check_close = print": "tamper",
    "x = open('../../../source/a/a.ipynb').read()": "tamper",
    "import os\nos.listdir('..')": "tamper",
    "eval('1')": "tamper",
    "f = getattr(np, 'allclose')": "tamper",
    "y = np.__dict__": "tamper",
    "from lib.numerics import softmax": "lib",
    "import lib": "lib",
    "import scipy.special": "import",
}
LEGIT = [
    "import numpy as np\n\ndef softmax(x):\n    e = np.exp(x - x.max(-1, keepdims=True))\n"
    "    return e / e.sum(-1, keepdims=True)",
    "import math\nimport torch\n\nclass Cache:\n    def __init__(self):\n        self.k = []\n"
    "        super().__init__()\n\n    def add(self, k):\n        self.k.append(k)",
    "def f(x):\n    y = x.copy()\n    y[0] += 1\n    return y",
    "def step(w):\n    w.grad = None\n    return w",
    "from collections import defaultdict\nfrom functools import lru_cache",
]


@pytest.mark.parametrize("source", CHEATS, ids=range(len(CHEATS)))
def test_policy_names_each_cheat(source):
    found = policy.check_cell(source, setup_names=SETUP, setup_modules={"numpy"},
                              setup_aliases={"np": "numpy"})
    assert found, f"not flagged: {source!r}"
    assert CHEATS[source] in {f.kind for f in found}, [str(f) for f in found]


@pytest.mark.parametrize("source", LEGIT, ids=range(len(LEGIT)))
def test_policy_leaves_honest_answers_alone(source):
    found = policy.check_cell(source, setup_names=SETUP, setup_modules={"numpy"},
                              setup_aliases={"np": "numpy"})
    assert not found, [str(f) for f in found]


def test_dependencies_follow_answers_that_call_each_other():
    cells = {"lse": "def logsumexp(x):\n    return x", "sm": "def log_softmax(x):\n"
             "    return x - logsumexp(x)", "other": "def bce(x):\n    return x"}
    assert policy.dependencies("check_close(log_softmax(1), 0)", cells) == {"lse", "sm"}
    assert policy.dependencies("check_close(bce(1), 0)", cells) == {"other"}


def test_forbidden_call_the_attention_statement_forbids_is_a_finding():
    """Issue 23 item 4: `F.scaled_dot_product_attention` in the sdpa answer scores nothing."""
    cheat = ("import torch.nn.functional as F\n\ndef sdpa(q, k, v, mask=None):\n"
             "    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)")
    assert [f.kind for f in policy.forbidden_uses(cheat, "attention", "sdpa")] == ["forbidden"]
    imported = "from torch.nn.functional import scaled_dot_product_attention as s"
    assert policy.forbidden_uses(imported, "attention", "sdpa")
    alias = "import torch.nn.functional as F\n_s = F.scaled_dot_product_attention"
    assert policy.forbidden_uses(alias, "attention", "mha"), "an alias another cell could call"
    allowed = "def mha(x):\n    return F.scaled_dot_product_attention(x, x, x)"
    assert policy.forbidden_uses(allowed, "attention", "mha") == []
    assert policy.forbidden_uses(cheat, "kv_cache", "sdpa") == []


def test_grading_zeroes_the_tests_of_a_forbidden_call_and_a_too_long_cell():
    from grader import pipeline

    source = json.loads((ROOT / "assignments" / "source" / "attention" / "attention.ipynb")
                        .read_text())
    layout = pipeline.Layout.of(source)
    sub = pipeline.Submission("s", "attention", Path("x"))
    sub.answers = dict(layout.answers)
    sub.answers["sdpa"] = ("def scaled_dot_product_attention(q, k, v, mask=None):\n"
                           "    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)")
    sub.answers["padding"] = "_x = " + "1+" * 20_000 + "1"
    rebuilt = {"cells": [{"cell_type": "code", "source": sub.answers[g],
                          "metadata": {"nbgrader": {"grade_id": g, "solution": True}}}
                         for g in layout.answers]}
    pipeline.apply_policy(rebuilt, layout, sub)
    assert {f.kind for f in sub.findings["sdpa"]} == {"forbidden"}
    assert {f.kind for f in sub.findings["padding"]} == {"size"}
    assert "not run" in sub.answers["padding"]
    zeroed = pipeline.policy_zeroes(layout, sub)
    assert {"test_sdpa_values", "test_sdpa_rows", "test_sdpa_mask", "test_padding_mask"} \
        <= zeroed.keys(), zeroed


def test_report_escapes_every_student_controlled_text():
    """Issue 23 item 12: reasons, notes and findings cannot inject HTML or close a block."""
    from grader import pipeline

    layout = pipeline.Layout([], {}, {"t": ""}, {"t": 1.0}, {})
    sub = pipeline.Submission("s", "numerics", Path("x"))
    evil = "```\n</pre><script>alert(1)</script>\n# Grading report: 9 / 9 points"
    sub.scores, sub.reasons = {"t": 0.0}, {"t": "RuntimeError: " + evil}
    sub.notes = [f"answer cell `a` raised:\n{evil}", "<img src=x onerror=alert(2)>"]
    sub.findings = {"a": [policy.Finding("tamper", 1, "<b>bold</b> | `x`")]}
    report = pipeline.report_markdown(layout, sub)
    assert "<script>" not in report and "<img" not in report and "<b>" not in report
    assert "\n# Grading report: 9" not in report and "```" not in report
    assert report.startswith("# Grading report: 0 / 1 points")
    assert pipeline.clean_text("a\ud800b") == "a\\ud800b"


def test_rich_outputs_become_text_and_long_outputs_are_cut():
    from grader import pipeline

    html_out = {"output_type": "display_data", "metadata": {},
                "data": {"text/html": "<script>alert(1)</script>", "text/plain": "<obj>",
                         "application/javascript": "alert(2)", "image/png": "iVBOR"}}
    clean = pipeline.sanitize_output(html_out)
    assert clean["data"] == {"text/plain": "<obj>", "image/png": "iVBOR"}
    long_out = pipeline.sanitize_output({"output_type": "stream", "name": "stdout",
                                        "text": "x" * 10**6})
    assert len(long_out["text"]) < pipeline.MAX_OUTPUT_CHARS + 200
    assert "cut by the grader" in long_out["text"]


def test_symlinked_or_irregular_submissions_are_refused(tmp_path):
    """Issue 23 item 5: a link to another student's notebook is not graded."""
    from grader import pipeline

    real = tmp_path / "good" / "numerics" / "numerics.ipynb"
    real.parent.mkdir(parents=True)
    real.write_text("{}")
    link = tmp_path / "cheat" / "numerics" / "numerics.ipynb"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    (tmp_path / "linked_dir").symlink_to(tmp_path / "good")
    os.mkfifo(tmp_path / "fifo.ipynb")
    assert pipeline.not_regular(real) == ""
    assert "symbolic link" in pipeline.not_regular(link)
    assert "symbolic link" in pipeline.not_regular(tmp_path / "linked_dir" / "numerics" / "numerics.ipynb")
    assert "not a regular file" in pipeline.not_regular(tmp_path / "fifo.ipynb", levels=1)


# --------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------
def run_sandboxed(code: str, tmp_path: Path, **kwargs) -> dict:
    """Run ``code`` in the sandbox; it prints one JSON object, which is returned."""
    argv = sandbox.bwrap_argv([sys.executable, "-c", code], **kwargs)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          preexec_fn=sandbox.limit_resources)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


PROBE = """
import json, os
result = {}
for path in %r:
    try:
        with open(path, "rb") as f:
            f.read(1)
        result[path] = "read"
    except OSError as error:
        result[path] = type(error).__name__
print(json.dumps(result))
"""


@needs_bwrap
def test_sandbox_cannot_read_the_course_or_the_repository(tmp_path):
    course_dir = tmp_path / "course"
    secret = course_dir / "source" / "a" / "a.ipynb"
    secret.parent.mkdir(parents=True)
    secret.write_text("the hidden tests")
    (course_dir / "gradebook.db").write_text("grades")
    workdir = course_dir / "autograded" / "alice" / "a"
    workdir.mkdir(parents=True)
    (workdir / "a.ipynb").write_text("{}")
    targets = [str(secret), str(course_dir / "gradebook.db"), "../../../gradebook.db",
               "../../../source/a/a.ipynb", str(ROOT / "assignments" / "nbgrader_config.py"),
               str(ROOT / "tests" / "test_assignments.py"), "/etc/shadow", "a.ipynb",
               str(ROOT / "lib" / "numerics.py"),      # the reference answers (issue 23, item 10)
               str(ROOT / "lib" / "attention" / "sdpa.py")]
    seen = run_sandboxed(PROBE % targets, tmp_path, workdir=workdir, read_only=(workdir,))
    assert seen.pop("a.ipynb") == "read", "the submission's own folder must stay readable"
    assert all(v != "read" for v in seen.values()), seen


WRITER = """
import json
result = {}
for path in %r:
    try:
        with open(path, "w") as f:
            f.write("x")
        result[path] = "written"
    except OSError as error:
        result[path] = type(error).__name__
print(json.dumps(result))
"""


@needs_bwrap
def test_sandbox_writes_only_to_its_own_tmp(tmp_path):
    workdir = tmp_path / "sub"
    workdir.mkdir()
    mounted = [str(workdir / "pwned.txt"),                 # the submission folder
               str(Path(sys.prefix) / "pwned.txt"),        # the virtualenv
               str(ROOT / "lib" / "pwned.txt"),            # lib (not even mounted)
               "/pwned.txt"]                               # the root
    repository = str(ROOT / "pwned.txt")
    seen = run_sandboxed(WRITER % [*mounted, repository, "/tmp/allowed.txt"], tmp_path,
                         workdir=workdir, read_only=(workdir,))
    assert seen.pop("/tmp/allowed.txt") == "written"
    for path in mounted:
        assert seen[path] != "written", seen
    # The repository folder itself is not mounted: a write there fails, unless the checkout
    # lies under /tmp, where the sandbox's /tmp (the scratch) takes the write instead.
    assert seen[repository] != "written" or ROOT.is_relative_to("/tmp"), seen
    # Whatever the sandbox saw, nothing appeared on the host: its /tmp is a tmpfs of its own.
    assert not any(Path(p).exists() for p in (*mounted, repository, "/tmp/allowed.txt"))
    assert list(tmp_path.iterdir()) == [workdir] and not any(workdir.iterdir())


@needs_bwrap
def test_sandbox_has_no_network_not_even_the_hosts_localhost(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    socket.create_connection(("127.0.0.1", port), timeout=5).close()  # reachable outside
    code = f"""
import json, socket
result = {{}}
for host in ("127.0.0.1", "1.1.1.1"):
    try:
        socket.create_connection((host, {port}), timeout=3).close()
        result[host] = "connected"
    except OSError as error:
        result[host] = type(error).__name__
print(json.dumps(result))
"""
    seen = run_sandboxed(code, tmp_path)
    server.close()
    assert "connected" not in seen.values(), seen


@needs_bwrap
def test_memory_cap_turns_a_runaway_allocation_into_memory_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFS_MEMORY_MB", "1024")
    code = """
import json
import numpy as np
hog = []
try:
    while True:
        hog.append(np.ones(50_000_000))
except MemoryError:
    print(json.dumps({"error": "MemoryError", "arrays": len(hog)}))
"""
    seen = run_sandboxed(code, tmp_path)
    assert seen["error"] == "MemoryError" and seen["arrays"] < 4


@needs_bwrap
def test_attack_filling_tmp_stops_at_the_scratch_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFS_SCRATCH_MB", "16")
    code = """
import json
block, written = bytes(2**20), 0   # 1 MiB
try:
    for i in range(64):
        with open(f"/tmp/fill{i}", "wb") as f:
            f.write(block)
        written += 1
    error = None
except OSError as e:
    error = e.strerror
print(json.dumps({"error": error, "mib": written}))
"""
    seen = run_sandboxed(code, tmp_path)
    assert seen["error"] == "No space left on device" and seen["mib"] <= 16, seen


@needs_bwrap
@pytest.mark.skipif(not sandbox.tasks_can_be_capped(),
                    reason="no writable cgroup v1 pids hierarchy on this machine")
def test_attack_fork_bomb_stops_at_the_task_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFS_MAX_TASKS", "40")
    code = """
import json, os, time
children, error = 0, None
try:
    for _ in range(300):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
except OSError as e:
    error = type(e).__name__
print(json.dumps({"error": error, "children": children}))
"""
    seen = run_sandboxed(code, tmp_path)
    assert seen["error"] == "BlockingIOError" and seen["children"] < 40, seen
    sandbox.remove_finished_cgroups()


def test_each_grading_kernel_gets_a_socket_folder_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFS_IPC_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)                            # a kernel runs in the submission's folder
    monkeypatch.setenv("MLFS_KERNEL_LIB", "0")             # as `make autograde` sets it
    manager = sandbox.private_ipc_kernel_manager()
    first, second = manager(transport="ipc"), manager(transport="ipc")
    folders = {Path(first.ip).parent, Path(second.ip).parent}
    assert len(folders) == 2 and all(f.parent == tmp_path for f in folders)
    for km in (first, second):
        km.connection_file = str(Path(km.ip).parent / "connection.json")
        km.write_connection_file()
        argv = sandbox.kernel_argv(km.connection_file, [])
        writable = {argv[i + 1] for i, arg in enumerate(argv) if arg == "--bind"}
        assert writable == {str(Path(km.ip).parent)}, argv
        # issue 23, item 10: nothing of the checkout (lib's reference answers) is mounted
        mounted = {argv[i + 1] for i, arg in enumerate(argv) if arg.endswith("bind")}
        mounted -= {str(p) for p in sandbox._python_roots()}   # the virtualenv may sit in the checkout
        assert not any(Path(m).is_relative_to(ROOT) for m in mounted), argv
    monkeypatch.setenv("MLFS_KERNEL_LIB", "1")             # a plain `nbgrader autograde`
    assert str(ROOT / "lib") in sandbox.kernel_argv(first.connection_file, [])


def test_missing_bubblewrap_stops_grading_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap.*refuses to run"):
        sandbox.bwrap_path()


def test_without_bubblewrap_the_grader_refuses_before_running_any_cell(monkeypatch):
    import nbformat
    from grader.execute import SandboxExecute

    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('ran')")])
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
        SandboxExecute().preprocess(nb, {"metadata": {"path": "."}})
    assert nb.cells[0].outputs == []


def test_the_course_configuration_loads_without_bubblewrap(tmp_path):
    """Releasing runs no student code, so an instructor without bwrap can still release."""
    code = (
        "import shutil, sys\n"
        "shutil.which = lambda name: None\n"
        "from traitlets.config.loader import PyFileConfigLoader\n"
        f"c = PyFileConfigLoader('nbgrader_config.py', path={str(ROOT / 'assignments')!r})"
        ".load_config()\n"
        "print(c.CourseDirectory.course_id)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "MLFS_TMP": str(tmp_path)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "mlfs"


# --------------------------------------------------------------------------------------
# The trusted re-check: make and check in the grader, run beside the student's code
# --------------------------------------------------------------------------------------
SETUP_SRC = ("import numpy as np\n\n\ndef check_close(a, b, tol=1e-9):\n"
             "    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)\n"
             "    assert a.shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol), (a, b)\n")


def recheck(tmp_path: Path, tests: dict[str, str], answers: dict[str, str],
            timeout: float = 20) -> dict:
    """Re-check each answer (``{student: source}``, in that order) in one job, as a batch does."""
    job = {"setup": [SETUP_SRC], "tests": list(tests.items()), "cell_timeout": timeout,
           "submissions": [{"student": who, "cells": [["answer", code]]} for who, code in answers.items()]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    split.recheck_main(tmp_path / "job.json", tmp_path / "out.json")
    return json.loads((tmp_path / "out.json").read_text())


def passed(result: dict) -> dict[str, bool]:
    return {gid: t["passed"] for gid, t in result["tests"].items()}


@needs_bwrap
def test_a_numpy_patched_in_the_students_process_cannot_fool_the_trusted_comparison(tmp_path):
    answer = ("import numpy\n\ndef _loosen(m):\n    m.allclose = lambda *a, **k: True\n\n"
              "_loosen([numpy][0])\n\ndef double(x):\n    return x\n")
    test = ("def make():\n    return {'x': np.ones(2)}\n\ndef run(x):\n    return {'y': double(x)}\n\n"
            "def check(inputs, outputs):\n    check_close(outputs['y'], 2 * inputs['x'])\n\n"
            "check(make(), run(**make()))\n")
    result = recheck(tmp_path, {"t": test}, {"s": answer})["s"]
    assert not result["tests"]["t"]["passed"]
    assert "AssertionError" in result["tests"]["t"]["reason"]


@needs_bwrap
def test_callbacks_generators_and_autograd_run_beside_the_students_code(tmp_path):
    # What the old protocol re-synchronised across processes now happens inside `run`:
    # a finite-difference callback that reads x in place, a generator the answer advances,
    # and a backward pass whose gradients come back as arrays.
    answer = ("import numpy as np\nimport torch\n\ndef draw(rng, n):\n    return rng.normal(size=n)\n\n"
              "def bump_and_call(x, f):\n    x[0] += 1.0\n    value = f()\n    x[0] -= 1.0\n"
              "    return value\n\ndef loss(x, w):\n    return (w * x ** 2).sum(), 7\n")
    tests = {
        "generator": "def make():\n    return {'seed': 3}\n\ndef run(seed):\n"
                     "    g = np.random.default_rng(seed)\n    return {'a': draw(g, 4), 'b': draw(g, 2)}\n\n"
                     "def check(inputs, outputs):\n    h = np.random.default_rng(inputs['seed'])\n"
                     "    check_close(outputs['a'], h.normal(size=4))\n"
                     "    check_close(outputs['b'], h.normal(size=2))  # the generator advanced\n\n"
                     "check(make(), run(**make()))\n",
        "in_place": "def make():\n    return {'x': np.zeros(3)}\n\ndef run(x):\n"
                    "    return {'seen': bump_and_call(x, lambda: float(x[0])), 'x': x}\n\n"
                    "def check(inputs, outputs):\n    assert outputs['seen'] == 1.0\n"
                    "    check_close(outputs['x'], inputs['x'])  # restored\n\n"
                    "check(make(), run(**make()))\n",
        "autograd": "import torch\n\n\ndef make():\n"
                    "    return {'x': torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True),\n"
                    "            'w': torch.tensor([3.0, 0.5], dtype=torch.float64)}\n\n"
                    "def run(x, w):\n    value, seven = loss(x, w)\n    value.backward()\n"
                    "    return {'grad': x.grad, 'seven': seven}\n\n"
                    "def check(inputs, outputs):\n    assert outputs['seven'] == 7\n"
                    "    check_close(outputs['grad'], 2 * inputs['w'] * inputs['x'].detach())\n\n"
                    "check(make(), run(**make()))\n",
    }
    result = recheck(tmp_path, tests, {"s": answer})["s"]
    assert all(passed(result).values()), result


def _calls(name: str, *args: str) -> str:
    """A test cell whose run returns ``name(*args)`` and whose check wants ``want``."""
    return (f"def make():\n    return {{}}\n\ndef run():\n    return {{'out': {name}({', '.join(args)})}}\n\n"
            "def check(inputs, outputs):\n    assert outputs['out'] == 1.0, outputs\n\n"
            "check(make(), run(**make()))\n")


@needs_bwrap
def test_a_looping_or_dying_answer_fails_only_its_own_tests(tmp_path):
    answer = ("import numpy as np\n\ndef spin():\n    while True:\n        pass\n\n"
              "def die():\n    import os\n    os._exit(3)\n\ndef fine():\n    return 1.0\n")
    tests = {"loops": _calls("spin"), "dies": _calls("die"), "fine": _calls("fine")}
    result = recheck(tmp_path, tests, {"s": answer}, timeout=2)["s"]
    assert result["tests"]["loops"]["reason"].startswith("timeout")
    assert "process died" in result["tests"]["dies"]["reason"]
    assert result["tests"]["fine"]["passed"]


@needs_bwrap
def test_attack_in_place_edit_of_test_inputs_cannot_make_a_wrong_answer_agree(tmp_path):
    # The answer overwrites its inputs (v with its mean row, w with zeros) so that a
    # reference computed from them after the call would agree with its wrong output.
    hostile = ("import numpy as np\nimport torch\n\ndef mix(a, v):\n"
               "    v[:] = v.mean(axis=0)\n    return v.copy()\n\n"
               "def project(x, w):\n    w.zero_()\n    return torch.zeros(x.shape[0], w.shape[0], "
               "dtype=x.dtype)\n")
    honest = ("import numpy as np\nimport torch\n\ndef mix(a, v):\n    return a @ v\n\n"
              "def project(x, w):\n    return x @ w.T\n")
    tests = {
        "numpy": "def make():\n    rng = np.random.default_rng(0)\n"
                 "    return {'a': rng.dirichlet(np.ones(3), size=3), 'v': rng.normal(size=(3, 2))}\n\n"
                 "def run(a, v):\n    return {'out': mix(a, v)}\n\n"
                 "def check(inputs, outputs):\n    check_close(outputs['out'], inputs['a'] @ inputs['v'])\n\n"
                 "check(make(), run(**make()))\n",
        "torch": "def make():\n    import torch\n    g = torch.Generator().manual_seed(0)\n"
                 "    return {'x': torch.randn(4, 3, generator=g, dtype=torch.float64),\n"
                 "            'w': torch.randn(2, 3, generator=g, dtype=torch.float64)}\n\n"
                 "def run(x, w):\n    return {'out': project(x, w)}\n\n"
                 "def check(inputs, outputs):\n    check_close(outputs['out'], inputs['x'] @ inputs['w'].T)\n\n"
                 "check(make(), run(**make()))\n",
    }
    results = recheck(tmp_path, tests, {"hostile": hostile, "honest": honest})
    assert not any(passed(results["hostile"]).values()), results["hostile"]
    assert all(passed(results["honest"]).values()), results["honest"]


@needs_bwrap
def test_attack_objects_with_special_names_never_reach_the_grader(tmp_path):
    # __array_interface__ pointing at address 8 used to segfault the trusted process (and
    # zero the next student of the batch); __torch_function__ answered torch.equal; an
    # always-equal object answered ==. Only plain data crosses now: each fails as "not data".
    hostile = ("import torch\n\nclass Liar:\n"
               "    __array_interface__ = {'shape': (4096,), 'typestr': '<f8', "
               "'data': (8, False), 'version': 3}\n\n"
               "    @classmethod\n    def __torch_function__(cls, func, types, args=(), "
               "kwargs=None):\n        return True\n\n    def __eq__(self, other):\n        return True\n\n"
               "def doubled(x):\n    return Liar()\n\ndef ones(n):\n    return Liar()\n")
    honest = ("import torch\n\ndef doubled(x):\n    return 2 * x\n\n"
              "def ones(n):\n    return torch.ones(n)\n")
    tests = {"array": "def make():\n    return {'x': np.arange(3.0)}\n\ndef run(x):\n"
                      "    return {'y': doubled(x)}\n\ndef check(inputs, outputs):\n"
                      "    check_close(outputs['y'], 2 * inputs['x'])\n\ncheck(make(), run(**make()))\n",
             "torch": "def make():\n    return {'n': 2}\n\ndef run(n):\n    return {'y': ones(n)}\n\n"
                      "def check(inputs, outputs):\n    import torch\n"
                      "    assert torch.equal(outputs['y'], torch.ones(inputs['n']))\n\n"
                      "check(make(), run(**make()))\n"}
    results = recheck(tmp_path, tests, {"hostile": hostile, "honest": honest})
    assert "grader_error" not in results["hostile"], results["hostile"]
    for gid, verdict in results["hostile"]["tests"].items():
        assert not verdict["passed"] and "not plain data" in verdict["reason"], (gid, verdict)
    assert all(passed(results["honest"]).values()), results["honest"]


@needs_bwrap
def test_attack_a_huge_reply_is_refused_quickly_and_fails_only_its_own_test(tmp_path):
    hostile = "import numpy as np\n\ndef total(x):\n    return np.zeros(2**24)\n"  # 128 MiB
    honest = "import numpy as np\n\ndef total(x):\n    return 1.0\n"
    tests = {"huge": _calls("total", "np.ones(3)"), "again": _calls("total", "np.ones(3)")}
    started = time.monotonic()
    results = recheck(tmp_path, tests, {"hostile": hostile, "honest": honest})
    assert time.monotonic() - started < 120
    assert "MiB in one reply" in results["hostile"]["tests"]["huge"]["reason"], results["hostile"]
    assert all(passed(results["honest"]).values()), results["honest"]


@needs_bwrap
def test_attack_garbage_on_the_pipe_or_a_student_that_never_answers_fails_only_its_own_test(tmp_path):
    # The answer writes bytes into every file descriptor it can find (the reply pipe among
    # them), then sleeps: the grader reads a header that announces a message larger than
    # it accepts, or waits until the cell's deadline; either way only this test fails.
    hostile = ("import os, time\n\ndef total(x):\n    for fd in range(3, 32):\n"
               "        try:\n            os.write(fd, b'\\xff' * 64)\n        except OSError:\n"
               "            pass\n    time.sleep(600)\n")
    honest = "def total(x):\n    return 1.0\n"
    tests = {"big": _calls("total", "np.ones(500_000)"), "small": _calls("total", "np.ones(3)")}
    started = time.monotonic()
    results = recheck(tmp_path, tests, {"hostile": hostile, "honest": honest}, timeout=15)
    assert time.monotonic() - started < 120
    assert not results["hostile"]["tests"]["big"]["passed"], results["hostile"]
    assert all(passed(results["honest"]).values()), results["honest"]


# --------------------------------------------------------------------------------------
# The whole corpus in one command
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    import make_bad_submissions

    base = tmp_path_factory.mktemp("batch")
    manifest = make_bad_submissions.build(base / "submissions", ["numerics", "calibration"],
                                          {"calibration"})
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "autograde",
                           str(base / "submissions"), "--out", str(base / "dist"),
                           "--timeout", "5"], capture_output=True, text=True, timeout=1500,
                          cwd=ROOT)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    with (base / "dist" / "grades.csv").open() as f:
        rows = list(csv.DictReader(f))
    details = json.loads((base / "dist" / "details.json").read_text())
    return {"manifest": manifest, "rows": rows, "details": details, "dist": base / "dist",
            "submissions": base / "submissions", "stdout": proc.stdout, "elapsed": elapsed}


@pytest.mark.slow
@needs_bwrap
@in_batch_group
def test_parallel_grading_gives_the_grades_of_the_serial_batch(batch, tmp_path):
    from grader import cli as course_cli

    chosen = sorted(batch["manifest"])[::4]          # a spread of good, broken and hostile
    subset = tmp_path / "subset"
    subset.mkdir()
    for student in chosen:
        course_cli._copy_keeping_links(batch["submissions"] / student, subset / student)
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "autograde",
                           str(subset), "--out", str(tmp_path / "dist"), "--timeout", "5",
                           "--jobs", "2"], capture_output=True, text=True, timeout=1500,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert f"{len(chosen)}/{len(chosen)}" in proc.stderr, "the progress bar reaches the total"
    with (tmp_path / "dist" / "grades.csv").open() as f:
        parallel = [row for row in csv.DictReader(f)]
    serial = [row for row in batch["rows"] if row["student_id"] in chosen]
    drop_seconds = lambda rows: sorted(  # noqa: E731
        tuple((k, v) for k, v in row.items() if k != "seconds") for row in rows)
    assert drop_seconds(parallel) == drop_seconds(serial)
    details = json.loads((tmp_path / "dist" / "details.json").read_text())
    assert {k: v["scores"] for k, v in details.items()} == {
        k: v["scores"] for k, v in batch["details"].items() if v["student"] in chosen}
    for student in chosen:
        assert any((tmp_path / "dist" / "feedback" / student).rglob("*.html")), student


@pytest.mark.slow
@needs_bwrap
@in_batch_group
def test_batch_has_one_csv_row_per_student(batch):
    students = [row["student_id"] for row in batch["rows"]]
    assert len(batch["manifest"]) >= 30
    assert sorted(students) == sorted(batch["manifest"]) and len(set(students)) == len(students)
    assert "s per submission" in batch["stdout"]


@pytest.mark.slow
@needs_bwrap
@in_batch_group
def test_every_submission_gets_exactly_its_expected_scores(batch):
    wrong = {}
    for student, case in batch["manifest"].items():
        got = batch["details"][f"{student}/{case['assignment']}"]["scores"]
        for test_id, expected in case["expect"].items():
            if expected is not None and got.get(test_id) != expected:
                wrong[f"{student}:{test_id}"] = (got.get(test_id), expected)
    assert not wrong, wrong
    rows = {row["student_id"]: row for row in batch["rows"]}
    for student, case in batch["manifest"].items():
        expected_total = sum(v for v in case["expect"].values() if v is not None)
        if None not in case["expect"].values():
            assert float(rows[student]["score"]) == expected_total, student


@pytest.mark.slow
@needs_bwrap
@in_batch_group
def test_every_submission_gets_feedback_that_says_what_happened(batch):
    missing, silent = [], {}
    for student, case in batch["manifest"].items():
        page = batch["dist"] / "feedback" / student / case["assignment"] / f"{case['assignment']}.html"
        if not page.exists():
            missing.append(student)
            continue
        text = page.read_text()
        absent = [w for w in ["Grading report", *case["feedback_contains"]] if w not in text]
        if absent:
            silent[student] = absent
    assert not missing and not silent, (missing, silent)


@pytest.mark.slow
@needs_bwrap
@in_batch_group
def test_hostile_writes_left_no_file_behind(batch):
    assert not (ROOT / "pwned-repo.txt").exists()
    assert not list(batch["submissions"].rglob("pwned*"))
    assert not list(batch["dist"].rglob("pwned*"))


@pytest.mark.slow
@needs_bwrap
def test_a_dead_kernel_keeps_earlier_points_and_zeroes_the_rest(tmp_path):
    """Straight through nbgrader (no policy): the kernel calls os._exit in the last answer."""
    root = course.new_course(tmp_path / "course", ["numerics"])
    course.release(root, "numerics")
    source = json.loads((root / "source" / "numerics" / "numerics.ipynb").read_text())
    for cell in source["cells"]:
        if cell["metadata"]["nbgrader"].get("grade_id") == "bce":
            cell["source"] = "import os\nos._exit(9)\n"
    course.submit(root, "dies", "numerics", source)
    course.autograde(root, "numerics")
    scores = course.cell_scores(root, "numerics", "dies")
    assert scores["test_bce"][0] == 0
    assert all(s == m for gid, (s, m) in scores.items() if gid != "test_bce"), scores
    graded = (root / "autograded" / "dies" / "numerics" / "numerics.ipynb").read_text()
    assert "KernelDied" in graded and "NotRun" in graded


def test_the_workflow_chapter_states_the_real_grades_csv_header(tmp_path):
    """Issue 14 item 3: the docs name the header `_write_csv` really writes."""
    from grader import pipeline

    pipeline._write_csv(tmp_path / "grades.csv", [])
    header = (tmp_path / "grades.csv").read_text().strip()
    chapter = (ROOT / "chapters" / "part7_drills" / "nbgrader_workflow.md").read_text()
    assert header == "assignment,student_id,score,max_score,status,seconds"
    assert f"`{header}`" in chapter


@pytest.mark.slow
@needs_bwrap
@in_batch_group
def test_feedback_pages_carry_no_student_html(batch):
    """Issue 23 item 12: the injection case's page shows its HTML as text, never as markup."""
    injected = [s for s, c in batch["manifest"].items() if c["case"] == "html_injection"]
    assert injected
    for student in injected:
        name = batch["manifest"][student]["assignment"]
        page = (batch["dist"] / "feedback" / student / name / f"{name}.html").read_text()
        for raw in ("<script>alert", "<img src=x onerror", "\n<h1>Grading report: 99"):
            assert raw not in page, f"{student}: {raw!r} reached the feedback page"


@pytest.mark.slow
@needs_bwrap
def test_a_reference_solution_short_of_full_marks_refuses_the_batch(tmp_path, monkeypatch):
    """Issue 14 item 1: when `lib` (here, a module the hidden tests import) does not resolve
    in the sandbox, the reference solution fails first and the batch writes no grades."""
    from grader import pipeline

    assignments = tmp_path / "assignments"
    shutil.copytree(ROOT / "assignments" / "source" / "numerics", assignments / "source" / "numerics")
    shutil.copy(ROOT / "assignments" / "nbgrader_config.py", assignments)
    path = assignments / "source" / "numerics" / "numerics.ipynb"
    text = path.read_text().replace("from lib.numerics import", "from lib_not_in_the_sandbox import")
    path.write_text(text)
    monkeypatch.setattr(course, "ASSIGNMENTS", assignments)
    submissions = tmp_path / "submissions" / "alice" / "numerics"
    submissions.mkdir(parents=True)
    shutil.copy(path, submissions / "numerics.ipynb")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "grades.csv").write_text("stale")
    with pytest.raises(pipeline.GradingRefused) as refused:
        pipeline.grade_batch(tmp_path / "submissions", tmp_path / "dist", cell_timeout=10,
                            log=lambda line: None)
    message = str(refused.value)
    assert "\n" not in message and "reference solution of 'numerics'" in message
    assert "No module named 'lib_not_in_the_sandbox'" in message, message
    assert not (tmp_path / "dist" / "grades.csv").exists()


@pytest.mark.slow
@needs_bwrap
def test_a_checkout_whose_virtualenv_is_a_symlink_to_another_checkouts_grades_right(tmp_path):
    """Issue 14 item 1, literally: a second checkout whose `.venv` is a symbolic link to this
    checkout's virtualenv (whose editable install maps `lib` to *this* checkout, which the
    second checkout does not have). The grader must use the second checkout's `lib` and `grader`."""
    checkout = tmp_path / "checkout"
    for part in ("lib", "grader", "assignments/source/numerics", "assignments/mutants/numerics"):
        shutil.copytree(ROOT / part, checkout / part,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "assignments" / "nbgrader_config.py", checkout / "assignments")
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    student = tmp_path / "submissions" / "alice" / "numerics"
    student.mkdir(parents=True)
    shutil.copy(ROOT / "assignments" / "source" / "numerics" / "numerics.ipynb", student)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFS_", "PYTHON"))}
    proc = subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-m", "grader.cli",
                           "autograde", str(tmp_path / "submissions"), "--out", str(tmp_path / "dist"),
                           "--timeout", "20"], capture_output=True, text=True, timeout=900,
                          env=env, cwd=checkout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with (tmp_path / "dist" / "grades.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["score"] == row["max_score"], row


def test_a_test_that_fails_only_in_the_notebook_run_says_its_message(tmp_path):
    """Issue 14 item 3: the summary shows the cell's error, not 'see the output below'."""
    from grader import pipeline

    path = tmp_path / "autograded" / "s" / "a" / "a.ipynb"
    path.parent.mkdir(parents=True)
    cell = {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "test_mem"}},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"},
                        {"output_type": "error", "ename": "AssertionError",
                         "evalue": "peak memory 18432 elements, expected at most 4096",
                         "traceback": []}]}
    path.write_text(json.dumps({"cells": [cell]}))
    said = pipeline._cell_error(tmp_path, "a", "s", "test_mem")
    assert said == "AssertionError: peak memory 18432 elements, expected at most 4096"
    assert pipeline._cell_error(tmp_path, "a", "s", "no_such_cell") == "see the cell's output below"
