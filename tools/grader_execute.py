"""nbgrader's ``Execute`` step, made to survive a kernel that dies or stops responding.

Stock nbgrader abandons the whole notebook when the kernel dies (the memory cap, a crash,
``os._exit``): the submission is removed from the autograded folder and the student gets
no feedback. Here the cell that killed the kernel gets an error output saying what
happened, every later code cell gets one saying it was not run, and grading goes on, so
the student keeps the points of the cells that passed before and scores zero on the rest.

A kernel that ignores the interrupt sent at a timeout would make every later cell wait
for the full timeout; after two timeouts in a row the kernel is shut down and the
remaining cells are marked as not run.
"""
from __future__ import annotations

import os

from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute

TIMEOUT_ERROR = "CellTimeoutError"


def _error(name: str, text: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=name, evalue=text, traceback=[f"{name}: {text}"])


class SandboxExecute(Execute):
    """``Execute`` that records a dead or unresponsive kernel in the cells' outputs."""

    def preprocess(self, nb, resources=None, km=None):
        import sandbox

        sandbox.bwrap_path()  # no sandbox: refuse before any student code runs
        self._stopped: str | None = None
        self._timeouts_in_a_row = 0
        return super().preprocess(nb, resources, km)

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
