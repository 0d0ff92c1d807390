"""Run a student's code in a bubblewrap sandbox: no network, a read-only view of the system
without the course folder, writes only to its own size-limited /tmp, and caps on memory and tasks.

Two programs use it:

* the grading kernel of ``nbgrader autograde``: ``nbgrader_config.py`` installs a kernel spec
  named ``python3`` whose command is ``python grader/sandbox.py kernel {connection_file}``,
  so every notebook nbgrader executes gets a sandboxed IPython kernel. The kernel and
  nbgrader talk over Unix sockets (ZeroMQ's ``ipc`` transport) in a folder bound into the
  sandbox, because a kernel without a network namespace has no ``localhost`` to share;
* the trusted re-check (``grader/split.py``), whose student side runs the answer cells and
  each test's ``run`` in a sandboxed process (it sees ``grader/`` read-only, for its own code).

What the sandbox sees: ``/usr`` and a few files of ``/etc`` read-only, the Python
installation and the virtualenv read-only, the submission's own folder read-only as the working
directory, and a fresh, size-limited ``tmpfs`` as ``/tmp`` and ``$HOME`` (the only writable
place; it vanishes with the sandbox). A grading kernel also sees its own socket folder,
and no other kernel's. The repository (``lib/`` with the reference answers included), the course
folder (instructor source, gradebook, other students' work) and the network do not exist
inside it: the hidden tests' expected values are computed outside, by the re-check.

Limits (environment variables read when the sandbox starts; ``nbgrader_config.py`` sets
the defaults):

* ``MLFS_MEMORY_MB`` caps the address space of the student's process (``RLIMIT_AS``), so
  an allocation past the cap raises ``MemoryError`` instead of taking the machine down;
* ``MLFS_SCRATCH_MB`` is the size of ``/tmp``: a write past it fails with ``OSError``
  (no space left on device);
* ``MLFS_MAX_TASKS`` caps the processes and threads of one sandbox (a fork bomb gets
  ``BlockingIOError``), through a ``pids`` cgroup (see :func:`limit_tasks`).
"""
from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"
DEFAULT_MEMORY_MB = 3072
DEFAULT_SCRATCH_MB = 256
DEFAULT_MAX_TASKS = 256
# Environment variables a student's process may see; everything else is dropped.
PASSED_ENV = ("LANG", "LC_ALL", "TRITON_INTERPRET", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "PYTHONHASHSEED")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "passwd", "group", "nsswitch.conf", "localtime",
             "hosts", "mime.types")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces: grading must not go on unsandboxed."""


def bwrap_path() -> str:
    """The ``bwrap`` executable; raise :class:`SandboxUnavailable` with a fix if absent."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: the autograder refuses to run students' "
            "code unsandboxed. Install it (Debian/Ubuntu: apt-get install bubblewrap; "
            ".ci/run does this) and grade again.")
    return path


def memory_limit_bytes() -> int:
    return int(os.environ.get("MLFS_MEMORY_MB", DEFAULT_MEMORY_MB)) * 2**20


def scratch_bytes() -> int:
    return int(os.environ.get("MLFS_SCRATCH_MB", DEFAULT_SCRATCH_MB)) * 2**20


def _python_roots() -> list[Path]:
    """Folders the interpreter needs: its installation and the virtualenv."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix)}
    return sorted(r for r in roots if not str(r).startswith("/usr"))


def bwrap_argv(command: list[str], *, workdir: Path | None = None,
               read_only: tuple[Path, ...] = (), read_write: tuple[Path, ...] = (),
               with_lib: bool = False) -> list[str]:
    """The ``bwrap`` command line that runs ``command`` in the sandbox described above."""
    argv = [bwrap_path(), "--unshare-all", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev"]
    for link in ("bin", "lib", "lib64", "sbin"):
        if Path("/", link).is_symlink():
            argv += ["--symlink", os.readlink(Path("/", link)), f"/{link}"]
    for name in ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # /tmp first, so that binds below it stay visible; a tmpfs, so its size is capped
    argv += ["--size", str(scratch_bytes()), "--tmpfs", "/tmp"]
    for path in (*_python_roots(), *read_only, *((LIB,) if with_lib else ())):
        argv += ["--ro-bind", str(path), str(path)]
    for path in read_write:
        argv += ["--bind", str(path), str(path)]
    argv += ["--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
             "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin",
             "--setenv", "MPLBACKEND", "Agg", "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    for name in PASSED_ENV:
        if name in os.environ:
            argv += ["--setenv", name, os.environ[name]]
    if with_lib or any(Path(p).is_relative_to(ROOT) for p in read_only):
        # `import grader` (the re-check's student side) and `import lib` (when mounted)
        # resolve to this checkout's folders, whatever the virtualenv's editable install
        # points at (a venv shared with, or symlinked from, another checkout)
        argv += ["--setenv", "PYTHONPATH", str(ROOT)]
    # The sandbox's root is a tmpfs: make it read-only, so that only /tmp (and
    # the kernel's socket folder) can be written.
    argv += ["--remount-ro", "/", "--chdir", str(workdir or "/tmp"), "--", *command]
    return argv


def limit_memory() -> None:
    """``preexec_fn``: cap the address space of the process about to be started."""
    limit = memory_limit_bytes()
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def limit_resources() -> None:
    """``preexec_fn`` of a sandbox: the memory cap and the cap on tasks."""
    limit_memory()
    limit_tasks()


# The pids controller of cgroup v1. (cgroup v2 would need the controller delegated to our
# subtree; it is not supported here, and tasks_can_be_capped() then says False.)
PIDS_ROOT = Path("/sys/fs/cgroup/pids")


def _pids_parent() -> Path | None:
    """A writable folder under which this machine lets us create ``pids`` cgroups."""
    if not (PIDS_ROOT / "tasks").exists():
        return None
    parent = PIDS_ROOT / "mlfs-sandboxes"
    try:
        parent.mkdir(exist_ok=True)
    except OSError:
        return None
    return parent


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, text: str) -> bool:
    try:
        path.write_text(text)
        return True
    except OSError:
        return False


def tasks_can_be_capped() -> bool:
    """Whether :func:`limit_tasks` has a mechanism on this machine (a pids cgroup)."""
    return _pids_parent() is not None


def limit_tasks() -> None:
    """Put the calling process (and so its future children) in a cgroup of its own whose
    ``pids.max`` is ``MLFS_MAX_TASKS``: past it ``fork`` and thread creation fail with
    ``EAGAIN``.

    ``RLIMIT_NPROC`` would be the obvious tool but the kernel does not enforce it for
    root (the grader in CI runs as root) and counts every process of the user, not of one
    sandbox; a ``pids`` cgroup counts exactly the sandbox's tasks. Without a writable
    cgroup hierarchy nothing is capped (``tasks_can_be_capped()`` says so).
    """
    parent = _pids_parent()
    if parent is None:
        return
    group = parent / str(os.getpid())
    try:
        group.mkdir(exist_ok=True)
    except OSError:
        return
    limit = int(os.environ.get("MLFS_MAX_TASKS", DEFAULT_MAX_TASKS))
    if _write(group / "pids.max", str(limit)):
        _write(group / "cgroup.procs", str(os.getpid()))


def remove_finished_cgroups() -> None:
    """Remove the cgroups of sandboxes that have ended (an empty cgroup can be removed)."""
    parent = _pids_parent()
    for group in (parent.iterdir() if parent else ()):
        if group.is_dir() and not _read(group / "cgroup.procs").strip():
            try:
                group.rmdir()
            except OSError:  # a process entered it meanwhile
                pass


def install_kernelspec(jupyter_dir: Path) -> Path:
    """Write ``<jupyter_dir>/kernels/python3/kernel.json`` that starts a sandboxed kernel."""
    spec_dir = jupyter_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, str(Path(__file__).resolve()), "kernel", "{connection_file}"],
            "display_name": "Python 3 (sandboxed grader)", "language": "python",
            "interrupt_mode": "message"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


_GRADER_FOLDER: list[Path] = []


def grader_folder() -> Path:
    """This process's private folder (kernel spec, socket folders), removed at exit.

    nbgrader may load its configuration more than once; all loads share one folder.
    """
    if not _GRADER_FOLDER:
        base = Path(tempfile.mkdtemp(prefix="mlfs-grader-", dir=os.environ.get("MLFS_TMP")))
        (base / "ipc").mkdir()
        install_kernelspec(base / "jupyter")
        atexit.register(shutil.rmtree, base, ignore_errors=True)
        atexit.register(remove_finished_cgroups)
        _GRADER_FOLDER.append(base)
    return _GRADER_FOLDER[0]


def private_ipc_kernel_manager() -> type:
    """nbgrader's kernel manager, but each kernel's sockets live in a folder of its own.

    With one shared socket folder, bound writable into every kernel, one student's code
    could leave a file there for the next student's code to read; a folder per kernel,
    created here and the only one bound into that kernel's sandbox, closes that channel.
    """
    from jupyter_client.manager import AsyncKernelManager

    class PrivateIpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            folder = tempfile.mkdtemp(prefix="kernel-", dir=os.environ["MLFS_IPC_DIR"])
            self.ip = str(Path(folder) / "kernel")

    return PrivateIpcKernelManager


def kernel_argv(connection_file: str, extra: list[str]) -> list[str]:
    """The ``bwrap`` command line of one grading kernel.

    The kernel sees its connection file (read-only) and its own socket folder, the parent
    folder of the ``ip`` its connection file names (see :func:`private_ipc_kernel_manager`).
    It sees ``lib`` only when ``MLFS_KERNEL_LIB=1``: a plain ``nbgrader autograde`` runs the
    full test cells, checks included, in the kernel and needs their oracle
    (``nbgrader_config.py`` makes that the default); ``make autograde`` sets 0, because its
    kernels run the student half of each test and the checks run in the trusted re-check.
    """
    connection = Path(connection_file).resolve()
    ipc_folder = Path(json.loads(connection.read_text())["ip"]).parent
    return bwrap_argv([sys.executable, "-m", "ipykernel_launcher", "-f", str(connection), *extra],
                      workdir=Path.cwd(), read_only=(Path.cwd(), connection),
                      read_write=(ipc_folder,), with_lib=os.environ.get("MLFS_KERNEL_LIB") == "1")


def run_kernel(connection_file: str, extra: list[str]) -> None:
    """Replace this process by a sandboxed IPython kernel (the kernel spec's command)."""
    argv = kernel_argv(connection_file, extra)
    limit_resources()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "kernel":
        run_kernel(sys.argv[2], sys.argv[3:])
    else:
        sys.exit("usage: sandbox.py kernel CONNECTION_FILE [kernel arguments]")
