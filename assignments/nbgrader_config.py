"""nbgrader configuration of the course (run nbgrader from this folder).

Layout (nbgrader's defaults): ``source/<assignment>/`` holds the instructor's notebooks
with solutions and hidden tests, ``release/`` the student versions,
``submitted/<student>/<assignment>/`` what students hand in, ``autograded/`` and
``feedback/`` what grading produces, and ``gradebook.db`` the grades.

Grading runs every student's kernel in a bubblewrap sandbox (``grader/sandbox.py``; the
design is in ``assignments/README.md``). The limits below are the defaults; the
environment variables ``MLFS_CELL_TIMEOUT`` (seconds) and ``MLFS_MEMORY_MB`` override them
for one run.
"""
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "mlfs"
c.CourseDirectory.root = str(Path(__file__).resolve().parent)

# What a student sees in place of the solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Grading limits: a cell that runs longer than CELL_TIMEOUT seconds is interrupted (its
# feedback says so) and the kernel goes on with the next cell; the kernel's address space
# is capped at MEMORY_MB, so a runaway allocation raises MemoryError in the student's cell.
CELL_TIMEOUT = int(os.environ.get("MLFS_CELL_TIMEOUT", 30))
MEMORY_MB = int(os.environ.get("MLFS_MEMORY_MB", 3072))

# A plain `nbgrader autograde` runs the full test cells (checks included) in the kernel,
# which then needs `lib`, the hidden tests' oracle; `make autograde` sets 0: its kernels
# run only the student half of each test, and the checks run in the trusted re-check.
os.environ.setdefault("MLFS_KERNEL_LIB", "1")

# The grader package sits at the repository's root (MLFS_ROOT when the course is a copy);
# nbgrader loads this file by path, so the root goes on the module search path here.
sys.path.insert(0, os.environ.get("MLFS_ROOT", str(Path(__file__).resolve().parents[1])))
from grader import execute  # noqa: E402

execute.configure_nbgrader(c, cell_timeout=CELL_TIMEOUT, memory_mb=MEMORY_MB)
