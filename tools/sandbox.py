"""Run a student's code in a bubblewrap sandbox: no network, a read-only view of the system
without the course folder, writes only to a scratch folder, and a memory cap.

Two programs use it:

* the grading kernel of ``nbgrader autograde``: ``nbgrader_config.py`` installs a kernel spec
  named ``python3`` whose command is ``python tools/sandbox.py kernel {connection_file}``,
  so every notebook nbgrader executes gets a sandboxed IPython kernel. The kernel and
  nbgrader talk over Unix sockets (ZeroMQ's ``ipc`` transport) in a folder bound into the
  sandbox, because a kernel without a network namespace has no ``localhost`` to share;
* the trusted re-check (``tools/recheck.py``), which runs the student's answer cells in a
  sandboxed process and calls them from outside.

What the sandbox sees: ``/usr`` and a few files of ``/etc`` read-only, the Python
installation and the virtualenv read-only, ``lib/`` read-only only when asked for (the
hidden tests use it as their oracle), the submission's own folder read-only as the working
directory, and a fresh scratch folder as ``/tmp`` and ``$HOME`` (the only writable place,
deleted afterwards). The repository, the course folder (instructor source, gradebook,
other students' work) and the network do not exist inside it.

Limits (environment variables read when the sandbox starts; ``nbgrader_config.py`` sets
the defaults): ``MLFS_MEMORY_MB`` caps the address space of the student's process
(``RLIMIT_AS``), so an allocation past the cap raises ``MemoryError`` instead of taking
the grading machine down.
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
TOOLS = ROOT / "tools"
LIB = ROOT / "lib"
DEFAULT_MEMORY_MB = 3072
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


def _python_roots() -> list[Path]:
    """Folders the interpreter needs: its installation and the virtualenv."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix)}
    return sorted(r for r in roots if not str(r).startswith("/usr"))


def bwrap_argv(command: list[str], *, scratch: Path, workdir: Path | None = None,
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
    argv += ["--bind", str(scratch), "/tmp"]  # first, so that binds below /tmp stay visible
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
    # The sandbox's root is a tmpfs: make it read-only, so that only the scratch folder (and
    # the kernel's socket folder) can be written.
    argv += ["--remount-ro", "/", "--chdir", str(workdir or "/tmp"), "--", *command]
    return argv


def limit_memory() -> None:
    """``preexec_fn``: cap the address space of the process about to be started."""
    limit = memory_limit_bytes()
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def install_kernelspec(jupyter_dir: Path) -> Path:
    """Write ``<jupyter_dir>/kernels/python3/kernel.json`` that starts a sandboxed kernel."""
    spec_dir = jupyter_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, str(TOOLS / "sandbox.py"), "kernel", "{connection_file}"],
            "display_name": "Python 3 (sandboxed grader)", "language": "python",
            "interrupt_mode": "message"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


_GRADER_FOLDER: list[Path] = []


def _grader_folder() -> Path:
    """This process's private folder (kernel spec, sockets, scratch), removed at exit.

    nbgrader may load its configuration more than once; all loads share one folder.
    """
    if not _GRADER_FOLDER:
        base = Path(tempfile.mkdtemp(prefix="mlfs-grader-", dir=os.environ.get("MLFS_TMP")))
        (base / "ipc").mkdir()
        install_kernelspec(base / "jupyter")
        atexit.register(shutil.rmtree, base, ignore_errors=True)
        _GRADER_FOLDER.append(base)
    return _GRADER_FOLDER[0]


def configure_nbgrader(c, *, cell_timeout: int, memory_mb: int) -> None:
    """Point nbgrader's kernels at the sandbox (called from ``nbgrader_config.py``).

    Every kernel is started by :func:`run_kernel`; nbgrader reaches it over Unix sockets
    in a private folder, which is the only part of the grader's file system the kernel
    can write besides its scratch folder. Releasing an assignment runs no student code and
    works without bubblewrap; grading refuses to start without it
    (:meth:`grader_execute.SandboxExecute.preprocess`).
    """
    os.environ.setdefault("MLFS_MEMORY_MB", str(memory_mb))
    base = _grader_folder()
    ipc_dir = base / "ipc"
    os.environ["MLFS_IPC_DIR"] = str(ipc_dir)
    os.environ["MLFS_SCRATCH_ROOT"] = str(base / "scratch")
    os.environ["JUPYTER_PATH"] = str(base / "jupyter")
    c.KernelSpecManager.ensure_native_kernel = False
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(ipc_dir / "kernel")
    import grader_execute

    c.Autograde.autograde_preprocessors = grader_execute.autograde_preprocessors()
    c.Execute.timeout = cell_timeout
    c.Execute.interrupt_on_timeout = True
    c.Execute.error_on_timeout = {
        "ename": "CellTimeoutError", "evalue": f"the cell ran longer than {cell_timeout} s",
        "traceback": [f"CellTimeoutError: the cell ran longer than {cell_timeout} s (the "
                      "grader's per-cell limit) and was interrupted"]}


def run_kernel(connection_file: str, extra: list[str]) -> None:
    """Replace this process by a sandboxed IPython kernel (the kernel spec's command)."""
    connection = Path(connection_file).resolve()
    scratch_root = Path(os.environ.get("MLFS_SCRATCH_ROOT", tempfile.gettempdir()))
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="kernel-", dir=scratch_root))
    ipc_dir = Path(os.environ["MLFS_IPC_DIR"])
    argv = bwrap_argv([sys.executable, "-m", "ipykernel_launcher", "-f", str(connection),
                       *extra],
                      scratch=scratch, workdir=Path.cwd(), read_only=(Path.cwd(), connection),
                      read_write=(ipc_dir,), with_lib=True)
    limit_memory()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "kernel":
        run_kernel(sys.argv[2], sys.argv[3:])
    else:
        sys.exit("usage: sandbox.py kernel CONNECTION_FILE [kernel arguments]")
