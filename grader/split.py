"""The trusted re-check: every graded test as make / run / check, split across two processes.

A test cell of an assignment defines three functions and ends with one line:

    def make():                  # the inputs: arrays, tensors, numbers (seeded, no student code)
        return {"x": np.array([0.5, -1.0, 2.0])}

    def run(x):                  # calls the student's functions; returns plain data
        return {"grad": numerical_gradient(lambda: float(np.sum(x ** 2)), x), "x": x}

    def check(inputs, outputs):  # every reference value and every assert
        check_close(outputs["grad"], 2 * inputs["x"], "numerical_gradient of sum(x**2)")

    check(make(), run(**make()))

In a learner's notebook and under ``nbgrader autograde`` that line runs in one process,
as written. Here it is split:

* the **trusted process** (this module's :func:`recheck_main`) runs the setup cells and
  each test cell from the instructor's source, with every ``check(make(), run(**make()))``
  line replaced by: ``inputs = make()``; send ``inputs`` to the student's process;
  ``check(inputs, outputs)`` on what comes back. No student code runs here and no student
  name exists here (a test cell that calls a student's function outside ``run`` fails
  with ``NameError``);
* the **student process** (``--student``, in the bubblewrap sandbox of
  :mod:`grader.sandbox`, without ``lib``) runs the setup cells and the student's answer
  cells, then, for each request, defines the test's ``run`` and calls it on the inputs.

One ``.npz`` archive of plain arrays (:mod:`grader.exchange`) crosses each way per test;
nothing else does, except the instructor's own source sent to the student process.
Because the inputs crossed as a copy, an answer that overwrites its inputs cannot change
what ``check`` compares against; a test that wants to know whether an input was changed
returns it from ``run``. A student process that overruns the per-cell time limit, dies or
sends something that is not plain data fails that test with the reason, and a fresh
process serves the next one. Every read and write on the pipe has the cell's deadline.
"""
from __future__ import annotations

import ast
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

from grader import exchange

HEADER = struct.Struct("<II")          # the lengths of a message's JSON part and its archive


class StudentTimeout(Exception):
    """The student's process did not answer before the cell's deadline."""


class StudentDied(Exception):
    """The student's process ended or sent something that is not a reply."""


class MessageTooLarge(StudentDied):
    """The student's process announced a reply larger than the grader accepts."""


class StudentError(Exception):
    """The student's code raised; the message carries their part of the traceback."""


# --------------------------------------------------------------------------------------
# Finding the make / run / check lines of a test cell
# --------------------------------------------------------------------------------------
def _split_line(node: ast.stmt) -> tuple[str, str, str] | None:
    """``(make, run, check)`` if ``node`` is ``check(make(), run(**make()))``, else None."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return None
    call = node.value
    if not (isinstance(call.func, ast.Name) and len(call.args) == 2 and not call.keywords):
        return None
    first, second = call.args

    def bare_call(node) -> str | None:
        ok = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return node.func.id if ok and not node.args and not node.keywords else None

    make = bare_call(first)
    if make is None or not (isinstance(second, ast.Call) and isinstance(second.func, ast.Name)):
        return None
    if second.args or len(second.keywords) != 1 or second.keywords[0].arg is not None:
        return None
    if bare_call(second.keywords[0].value) != make:
        return None
    return make, second.func.id, call.func.id


def split_cell(source: str) -> tuple[ast.Module, dict[int, tuple[str, str, str, str]]]:
    """The cell's syntax tree and, per make/run/check line, its names and ``run``'s source.

    The key is the statement's index in the module body; ``run``'s source is the last
    ``def`` of that name above the line.
    """
    tree = ast.parse(source)
    defined: dict[str, str] = {}
    lines: dict[int, tuple[str, str, str, str]] = {}
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.FunctionDef):
            defined[node.name] = ast.get_source_segment(source, node)
        names = _split_line(node)
        if names is not None:
            make, run, check = names
            if run not in defined:
                raise SyntaxError(f"line {node.lineno}: {run}() is not defined in this cell above it")
            lines[index] = (make, run, check, defined[run])
    return tree, lines


def is_split(source: str) -> bool:
    """Whether a test cell has at least one make/run/check line."""
    try:
        return bool(split_cell(source)[1])
    except SyntaxError:
        return False


HIDDEN_MARKS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def _student_part(code: str) -> str:
    """One region of a test cell without its checks: ``check(make(), run(**make()))``
    becomes ``run(**make())`` and the ``def`` of each check function goes."""
    if not code.strip():
        return code
    tree, lines = split_cell(code)
    checks = {check for _, _, check, _ in lines.values()}
    kept = []
    for index, node in enumerate(tree.body):
        if index in lines:
            make, run, _, _ = lines[index]
            kept.append(f"{run}(**{make}());")  # `;`: the outputs are not displayed
        elif not (isinstance(node, ast.FunctionDef) and node.name in checks):
            kept.append(ast.get_source_segment(code, node))
    return "\n\n".join(kept) + "\n"


def student_half(source: str) -> str:
    """The test cell as the student's kernel runs it under nbgrader: inputs and calls only.

    Every expected value and assert stays with the trusted re-check, so the kernel needs
    no ``lib`` and never holds a reference answer; a test cell there fails only when the
    student's code raises (or times out). The hidden-test markers stay where they were.
    """
    parts, region = [], []
    for line in source.splitlines(keepends=True):
        if line.strip() in HIDDEN_MARKS:
            parts += [_student_part("".join(region)), line if line.endswith("\n") else line + "\n"]
            region = []
        else:
            region.append(line)
    parts.append(_student_part("".join(region)))
    return "".join(parts)


# --------------------------------------------------------------------------------------
# The pipe: one JSON header and one archive per message, each way, with a deadline
# --------------------------------------------------------------------------------------
class Pipe:
    """Messages over two file descriptors; every read and write honours ``deadline``."""

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd, self.write_fd = read_fd, write_fd
        self.deadline = float("inf")

    def _wait(self, fd: int, writing: bool) -> None:
        left = None if self.deadline == float("inf") else self.deadline - time.monotonic()
        if left is not None and left <= 0:
            raise StudentTimeout()
        ready = select.select([], [fd], [], left) if writing else select.select([fd], [], [], left)
        if not any(ready):
            raise StudentTimeout()

    def send(self, header: dict, archive: bytes = b"") -> None:
        head = json.dumps(header).encode()
        data = memoryview(HEADER.pack(len(head), len(archive)) + head + archive)
        while data:
            self._wait(self.write_fd, writing=True)
            try:
                data = data[os.write(self.write_fd, data):]
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError):
                raise StudentDied() from None

    def _read(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            self._wait(self.read_fd, writing=False)
            chunk = os.read(self.read_fd, min(left, 1 << 20))
            if not chunk:
                raise StudentDied()
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def receive(self) -> tuple[dict, bytes]:
        head_size, archive_size = HEADER.unpack(self._read(HEADER.size))
        if head_size > 1 << 20 or archive_size > exchange.MAX_BYTES:
            raise MessageTooLarge()
        try:
            header = json.loads(self._read(head_size))
        except (ValueError, RecursionError):
            raise StudentDied("a message that is not JSON") from None
        if not isinstance(header, dict):
            raise StudentDied("a message that is not a JSON object")
        return header, self._read(archive_size)


# --------------------------------------------------------------------------------------
# The student's side (sandboxed): answer cells loaded, then one ``run`` per request
# --------------------------------------------------------------------------------------
def _student_traceback(error: BaseException) -> str:
    """The traceback without the grader's own frames (they would only confuse)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.endswith(("split.py", "exchange.py"))]
    lines = traceback.format_list(frames) + traceback.format_exception_only(error)
    return "".join(lines)[-4000:]


class _CellTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise _CellTimeout("timeout: this code ran longer than the per-cell limit")


def student_main() -> None:
    """Serve the trusted process over stdin/stdout; the student's prints go nowhere."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    pipe = Pipe(read_fd, write_fd)
    namespace: dict = {"__name__": "__main__"}
    signal.signal(signal.SIGALRM, _alarm)
    while True:
        try:
            header, archive = pipe.receive()
        except StudentDied:
            return
        limit = float(header["cell_timeout"])
        if header["op"] == "init":
            namespace = {"__name__": "__main__"}
            errors = {}
            for source in header["setup"]:
                exec(compile(source, "<setup cell>", "exec"), namespace)  # noqa: S102 (instructor's)
            for grade_id, source in header["cells"]:
                signal.setitimer(signal.ITIMER_REAL, limit)  # each answer cell has its own limit
                try:
                    exec(compile(source, f"<answer cell {grade_id}>", "exec"), namespace)  # noqa: S102
                except BaseException as error:  # the student's code may raise anything
                    errors[grade_id] = _student_traceback(error)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            pipe.send({"errors": errors})
            continue
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            scope = dict(namespace)  # the test's run sees the answers but does not replace one
            exec(compile(header["source"], "<test's run>", "exec"), scope)  # noqa: S102
            outputs = scope[header["run"]](**exchange.decode(archive))
            reply = exchange.encode(outputs, f"{header['run']}()'s result")
        except _CellTimeout:
            pipe.send({"timeout": True})
        except BaseException as error:  # the student's code may raise anything
            signal.setitimer(signal.ITIMER_REAL, 0)
            pipe.send({"error": _student_traceback(error)})
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)
            pipe.send({"ok": True}, reply)


# --------------------------------------------------------------------------------------
# The trusted side
# --------------------------------------------------------------------------------------
class StudentProcess:
    """A sandboxed ``python -m grader.split --student`` with the answer cells loaded."""

    def __init__(self, setup: list[str], cells: list[tuple[str, str]], *, timeout: float):
        from grader import sandbox

        self.timeout = timeout
        argv = sandbox.bwrap_argv([sys.executable, "-m", "grader.split", "--student"],
                                  read_only=(Path(__file__).resolve().parent,))
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL,
                                        preexec_fn=sandbox.limit_resources)
        os.set_blocking(self.process.stdin.fileno(), False)  # writes return what fits
        self.pipe = Pipe(self.process.stdout.fileno(), self.process.stdin.fileno())
        try:
            self.load(setup, cells)
        except BaseException:
            self.close()
            raise

    def load(self, setup: list[str], cells: list[tuple[str, str]]) -> None:
        """Run the setup and answer cells in a fresh namespace; keep each cell's error."""
        self.pipe.deadline = time.monotonic() + self.timeout * (len(cells) + 2) + 10
        self.pipe.send({"op": "init", "setup": setup, "cells": [list(c) for c in cells],
                        "cell_timeout": self.timeout})
        header, _ = self.pipe.receive()
        errors = header.get("errors")
        self.errors = {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}

    def run(self, run_name: str, run_source: str, inputs):
        """``run(**inputs)`` in the student's process; its outputs, decoded."""
        self.pipe.deadline = time.monotonic() + self.timeout + 2
        self.pipe.send({"op": "run", "run": run_name, "source": run_source,
                        "cell_timeout": self.timeout}, exchange.encode(inputs, "make()'s inputs"))
        header, archive = self.pipe.receive()
        if header.get("timeout"):
            raise StudentTimeout()
        if "error" in header:
            raise StudentError(str(header["error"]))
        try:
            return exchange.decode(archive)
        except ValueError as error:
            raise StudentError(f"{run_name}() did not return plain data: {error}") from None

    def close(self) -> None:
        from grader import sandbox

        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()
        sandbox.remove_finished_cgroups()

    def exit_reason(self) -> str:
        code = self.process.poll()
        if code is None:
            return "it stopped answering"
        if code < 0:
            return f"it was killed by signal {-code}"
        return f"it exited with status {code}"


class InProcessStudent:
    """The student's side in this process, for authors and the suite: no sandbox, same split.

    The answer cells get a namespace of their own and inputs and outputs go through
    :mod:`grader.exchange` both ways, so a test that passes here passes across processes
    (a ``run`` that reads a name of its test cell, or returns an object, fails here too).
    Never use it on students' code: it has no sandbox and no time limit.
    """

    def __init__(self, setup: list[str], cells: list[tuple[str, str]]):
        self.namespace: dict = {"__name__": "__main__"}
        for source in setup:
            exec(compile(source, "<setup cell>", "exec"), self.namespace)  # noqa: S102
        self.errors = {}
        for grade_id, source in cells:
            try:
                exec(compile(source, f"<answer cell {grade_id}>", "exec"), self.namespace)  # noqa: S102
            except Exception as error:  # a mutant or a blank answer may raise
                self.errors[grade_id] = _student_traceback(error)

    def run(self, run_name: str, run_source: str, inputs):
        scope = dict(self.namespace)
        exec(compile(run_source, "<test's run>", "exec"), scope)  # noqa: S102
        try:
            outputs = scope[run_name](**exchange.decode(exchange.encode(inputs)))
        except Exception as error:
            raise StudentError(_student_traceback(error)) from None
        return exchange.decode(exchange.encode(outputs, f"{run_name}()'s result"))


def run_tests(setup: list[str], tests: list[tuple[str, str]], student) -> dict[str, str]:
    """``{grade_id: ""}`` for a passed test cell, the reason otherwise (in-process student)."""
    setup_namespace: dict = {"__name__": "__main__"}
    for source in setup:
        exec(compile(source, "<setup cell>", "exec"), setup_namespace)  # noqa: S102
    verdicts = {}
    for grade_id, source in tests:
        try:
            _run_test_cell(grade_id, source, setup_namespace, student.run)
            verdicts[grade_id] = ""
        except Exception as error:  # a failing test may raise anything
            verdicts[grade_id] = _describe(error, 0, None) or type(error).__name__
    return verdicts


def _describe(error: BaseException, timeout: float, student: StudentProcess | None) -> str:
    """Why a test failed, in the words of the grading report."""
    if isinstance(error, StudentTimeout):
        return f"timeout: your code ran longer than {timeout:g} s (the per-cell limit) and was stopped"
    if isinstance(error, MessageTooLarge):
        return (f"your code sent the grader more than {exchange.MAX_BYTES >> 20} MiB in one "
                "reply (return small arrays: the tests' inputs are small)")
    if isinstance(error, StudentDied):
        why = student.exit_reason() if student else "it ended"
        return (f"your code's process died ({why}); the most common cause is the memory cap "
                f"({os.environ.get('MLFS_MEMORY_MB', '?')} MiB) or a call that exits")
    if isinstance(error, StudentError):
        return "your code raised an error:\n" + str(error).strip()
    return "".join(traceback.format_exception_only(error)).strip()


def _run_test_cell(grade_id: str, source: str, setup_namespace: dict, call_run) -> None:
    """Execute one test cell with its make/run/check lines split; raise if it fails."""
    tree, lines = split_cell(source)
    namespace = dict(setup_namespace)   # a test cell sees the setup, never another test cell
    for index, node in enumerate(tree.body):
        code = compile(ast.Module([node], []), f"<test cell {grade_id}>", "exec")
        if index not in lines:
            exec(code, namespace)  # noqa: S102 (the instructor's test code)
            continue
        make, run, check, run_source = lines[index]
        inputs = namespace[make]()
        outputs = call_run(run, run_source, inputs)
        namespace[check](inputs, outputs)


def recheck_submission(job: dict, submission: dict) -> dict:
    """``{"tests": {grade_id: {"passed", "reason"}}, "cell_errors": {...}}`` of one student."""
    timeout = float(job["cell_timeout"])
    setup_namespace: dict = {"__name__": "__main__"}
    for source in job["setup"]:
        exec(compile(source, "<setup cell>", "exec"), setup_namespace)  # noqa: S102 (trusted)
    tests: dict[str, dict] = {}
    cell_errors: dict[str, str] = {}
    student: StudentProcess | None = None
    startup_failure: str | None = None
    for grade_id, source in job["tests"]:
        if startup_failure is None and student is None:
            try:
                student = StudentProcess(job["setup"], submission["cells"], timeout=timeout)
                cell_errors.update(student.errors)
            except (StudentTimeout, StudentDied) as error:
                startup_failure = "your answer cells could not be loaded: " + _describe(error, timeout, None)
        if startup_failure is not None:
            tests[grade_id] = {"passed": False, "reason": startup_failure}
            continue
        try:
            _run_test_cell(grade_id, source, setup_namespace, student.run)
            tests[grade_id] = {"passed": True, "reason": ""}
        except BaseException as error:  # a failing test may raise anything
            tests[grade_id] = {"passed": False, "reason": _describe(error, timeout, student)}
            if isinstance(error, (StudentTimeout, StudentDied)):
                student.close()
                student = None
    if student is not None:
        student.close()
    return {"tests": tests, "cell_errors": cell_errors}


def recheck_main(job_path: Path, result_path: Path) -> None:
    """Re-check every submission of one job file; write the results as JSON."""
    job = json.loads(job_path.read_text())
    results = {}
    for submission in job["submissions"]:
        started = time.monotonic()
        try:
            results[submission["student"]] = recheck_submission(job, submission)
        except Exception:  # a bug here must not lose the other students' results
            results[submission["student"]] = {"grader_error": traceback.format_exc()[-4000:]}
        results[submission["student"]]["seconds"] = time.monotonic() - started
        result_path.write_text(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1:] == ["--student"]:
        student_main()
    elif len(sys.argv) == 3:
        recheck_main(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m grader.split JOB.json RESULT.json   |   ... --student")
