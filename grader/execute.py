"""nbgrader's ``Execute`` step, made to survive a kernel that dies or stops responding.

Stock nbgrader abandons the whole notebook when the kernel dies (the memory cap, a crash,
``os._exit``): the submission is removed from the autograded folder and the student gets
no feedback. Here the cell that killed the kernel gets an error output saying what
happened, every later code cell gets one saying it was not run, and grading goes on, so
the student keeps the points of the cells that passed before and scores zero on the rest.

A kernel that ignores the interrupt sent at a timeout would make every later cell wait
for the full timeout; after two timeouts in a row the kernel is shut down and the
remaining cells are marked as not run.

A notebook may print at most ``MLFS_OUTPUT_KB`` kilobytes (default 1024) of output in
all: past that, streams and displays are dropped and one note says so, so a student who
prints 256 MiB cannot make the grader hold it in memory or write it into a feedback page.
Errors are always kept (cut to a few kilobytes): nbgrader grades a test cell by whether
it raised.
"""
from __future__ import annotations

import os

from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute

from grader import sandbox

TIMEOUT_ERROR = "CellTimeoutError"


def _error(name: str, text: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=name, evalue=text, traceback=[f"{name}: {text}"])


def _kilobytes(text) -> int:
    return len(str(text)) // 1024


class SandboxExecute(Execute):
    """``Execute`` that records a dead or unresponsive kernel in the cells' outputs, starts
    each kernel with a socket folder of its own, and caps the output a notebook may print."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", sandbox.private_ipc_kernel_manager())
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources=None, km=None):
        sandbox.bwrap_path()  # no sandbox: refuse before any student code runs
        self._stopped: str | None = None
        self._timeouts_in_a_row = 0
        self._output_kb = 0
        self._output_cut = False
        return super().preprocess(nb, resources, km)

    def output(self, outs, msg, display_id, cell_index):
        """Keep the notebook's output under the cap; always keep errors (cut short)."""
        budget = int(os.environ.get("MLFS_OUTPUT_KB", 1024))
        content = msg.get("content", {})
        if msg["msg_type"] == "error":
            content["traceback"] = [str(line)[:4000] for line in content.get("traceback", [])[-50:]]
            content["evalue"] = str(content.get("evalue", ""))[:4000]
            return super().output(outs, msg, display_id, cell_index)
        self._output_kb += _kilobytes(content)
        if self._output_kb <= budget:
            return super().output(outs, msg, display_id, cell_index)
        if not self._output_cut:
            self._output_cut = True
            outs.append(NotebookNode(output_type="stream", name="stderr", text=(
                f"[grader] output was cut: this notebook printed more than {budget} KB; "
                "the rest of its output is dropped\n")))
        return None

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if self._stopped:
            cell.outputs = [_error("NotRun", self._stopped)]
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            memory = os.environ.get("MLFS_MEMORY_MB", "?")
            cell.outputs = list(cell.get("outputs", [])) + [_error(
                "KernelDied", "the grading kernel died while running this cell: most likely "
                f"it went past the memory cap ({memory} MiB), or the code crashed or exited")]
            self._stopped = "not run: the kernel died in an earlier cell"
            return cell, resources
        self._note_timeout(cell)
        return cell, resources

    def _note_timeout(self, cell) -> None:
        timed_out = any(o.get("ename") == TIMEOUT_ERROR for o in cell.outputs)
        self._timeouts_in_a_row = self._timeouts_in_a_row + 1 if timed_out else 0
        if self._timeouts_in_a_row >= 2:
            self._stopped = ("not run: the kernel did not respond after two timeouts in a "
                             "row and was shut down")
            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except Exception as error:  # already gone: nothing left to stop
                self.log.warning("could not shut the kernel down: %s", error)


def autograde_preprocessors() -> list:
    """nbgrader's autograde steps with ``Execute`` replaced by :class:`SandboxExecute`."""
    from nbgrader.converters import Autograde

    return [SandboxExecute if step is Execute else step
            for step in Autograde.class_traits()["autograde_preprocessors"].default()]


def configure_nbgrader(c, *, cell_timeout: int, memory_mb: int) -> None:
    """Point nbgrader's kernels at the sandbox (called from ``nbgrader_config.py``).

    Every kernel is started by :func:`grader.sandbox.run_kernel`; nbgrader reaches it over Unix sockets
    in a folder private to that kernel, the only part of the grader's file system the
    kernel can write (besides its own ``/tmp``). Releasing an assignment runs no student code and
    works without bubblewrap; grading refuses to start without it
    (:meth:`SandboxExecute.preprocess`).
    """
    os.environ.setdefault("MLFS_MEMORY_MB", str(memory_mb))
    base = sandbox.grader_folder()
    ipc_dir = base / "ipc"
    os.environ["MLFS_IPC_DIR"] = str(ipc_dir)
    os.environ["JUPYTER_PATH"] = str(base / "jupyter")
    c.KernelSpecManager.ensure_native_kernel = False
    c.KernelManager.transport = "ipc"
    c.Autograde.autograde_preprocessors = autograde_preprocessors()
    c.Execute.timeout = cell_timeout
    c.Execute.interrupt_on_timeout = True
    c.Execute.error_on_timeout = {
        "ename": "CellTimeoutError", "evalue": f"the cell ran longer than {cell_timeout} s",
        "traceback": [f"CellTimeoutError: the cell ran longer than {cell_timeout} s (the "
                      "grader's per-cell limit) and was interrupted"]}
