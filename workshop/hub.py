"""Start and stop the workshop's JupyterHub on this machine.

    python workshop/hub.py start --roster roster.csv [--port 8080]   # make workshop ROSTER=...
    python workshop/hub.py stop                                      # make workshop-stop
    python workshop/hub.py release <assignment>                      # as the instructor

``start`` (as root, since it creates accounts) does four things, then starts the hub:

1. one local account per roster line (``username,role,password``; role ``instructor`` or
   ``learner``; an empty password gets a random one, written to ``passwords.csv`` in the
   state folder), with a home folder only its owner can read;
2. nbgrader's exchange folder, writable by everyone with the sticky bit, where releases
   wait to be fetched and submissions wait to be collected;
3. for each instructor, a course folder ``~/mlfs-course`` holding the assignments' source
   notebooks (solutions and hidden tests stay there, never in the exchange);
4. one Jupyter config folder per role: learners get nbgrader's Assignments tab only,
   instructors also the formgrader.

Grading is the course's own sandboxed grader: after ``nbgrader collect`` the instructor's
``~/mlfs-course/submitted`` is laid out as ``make autograde SUBMISSIONS=...`` expects.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COURSE_ID = "mlfs"
ROLES = ("instructor", "learner")
LEARNER_ONLY = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                "@jupyter/nbgrader:course-list"]


def read_roster(path: Path) -> list[dict]:
    """Rows ``{"username", "role", "password"}``; raises ValueError naming the bad line."""
    rows = []
    with path.open(newline="") as f:
        for line_no, row in enumerate(csv.DictReader(f), start=2):
            name, role = row.get("username", "").strip(), row.get("role", "").strip()
            if not name.isidentifier() or name != name.lower():
                raise ValueError(f"{path}:{line_no}: username {name!r} must be lower-case "
                                 "letters, digits and '_' (it becomes a system account)")
            if role not in ROLES:
                raise ValueError(f"{path}:{line_no}: role must be one of {ROLES}, got {role!r}")
            rows.append({"username": name, "role": role,
                         "password": (row.get("password") or "").strip()})
    if not any(r["role"] == "instructor" for r in rows):
        raise ValueError(f"{path}: the roster needs at least one instructor")
    return rows


def ensure_account(name: str, password: str) -> Path:
    """Create the system account ``name`` (if missing), set its password, lock its home."""
    try:
        home = Path(pwd.getpwnam(name).pw_dir)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
        home = Path(pwd.getpwnam(name).pw_dir)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    home.chmod(0o700)  # no learner can read another's notebooks
    return home


def chown_tree(path: Path, name: str) -> None:
    user = pwd.getpwnam(name)
    for p in [path, *path.rglob("*")]:
        os.chown(p, user.pw_uid, user.pw_gid)


def make_course(home: Path, name: str, exchange: Path) -> Path:
    """``~/mlfs-course`` with the assignments' sources and a course config for nbgrader."""
    course = home / "mlfs-course"
    shutil.copytree(REPO / "assignments" / "source", course / "source", dirs_exist_ok=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.Exchange.root = {str(exchange)!r}\n")
    chown_tree(course, name)
    return course


def write_role_configs(state: Path, exchange: Path) -> None:
    """One Jupyter config folder per role (chosen per user by jupyterhub_config.py)."""
    for role in ROLES:
        folder = state / "jupyter-config" / role
        (folder / "labconfig").mkdir(parents=True, exist_ok=True)
        lines = ["import os", "c = get_config()  # noqa: F821",
                 f"c.CourseDirectory.course_id = {COURSE_ID!r}",
                 f"c.Exchange.root = {str(exchange)!r}"]
        if role == "instructor":
            lines.append('c.CourseDirectory.root = os.path.expanduser("~/mlfs-course")')
        (folder / "nbgrader_config.py").write_text("\n".join(lines) + "\n")
        disabled = LEARNER_ONLY if role == "learner" else []
        server = {"ServerApp": {"jpserver_extensions": {
            "nbgrader.server_extensions.formgrader": role == "instructor",
            "nbgrader.server_extensions.create_assignment": role == "instructor",
            "nbgrader.server_extensions.course_list": role == "instructor"}}}
        (folder / "jupyter_server_config.json").write_text(json.dumps(server, indent=1))
        (folder / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {p: True for p in disabled}}, indent=1))
    for p in [state / "jupyter-config", *(state / "jupyter-config").rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # every user's server reads its role's folder


def untraversable(paths: list[Path]) -> list[Path]:
    """Folders on the way to ``paths`` that other users may not enter (mode without o+x).

    Every learner's server runs the course's Python as that learner, so the interpreter
    (often under ``/root/.pyenv`` on a machine set up by root) must be reachable.
    """
    blocked = []
    for path in paths:
        for folder in reversed(path.resolve().parents):
            if not folder.stat().st_mode & 0o001 and folder not in blocked:
                blocked.append(folder)
    return blocked


def wait_for_health(port: int, timeout: float, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hub/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the hub did not answer on port {port} within {timeout:.0f} s; "
                       f"see {log}")


def start(roster: Path, port: int, state: Path, exchange: Path) -> None:
    if os.geteuid() != 0:
        sys.exit("the workshop creates system accounts and runs each user's server as that "
                 "user: run it as root (sudo make workshop ROSTER=...)")
    proxy = REPO / ".npm-hub" / "node_modules" / ".bin" / "configurable-http-proxy"
    if not proxy.exists():
        sys.exit(f"{proxy} is missing: run 'make workshop' (it installs it from npm)")
    blocked = untraversable([Path(sys.executable).resolve(), REPO / ".venv"])
    if blocked:
        sys.exit("the learners' servers run the course's Python as each learner, but other "
                 f"users cannot enter {', '.join(map(str, blocked))}. Build the virtualenv "
                 "from a system-wide Python (make venv PYTHON=/usr/bin/python3.11), or allow "
                 f"traversal: chmod o+x {' '.join(map(str, blocked))}")
    rows = read_roster(roster)
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o711)  # users traverse it to their role's config; they cannot list it
    exchange.mkdir(parents=True, exist_ok=True)
    exchange.chmod(0o1777)
    issued = []
    for row in rows:
        password = row["password"] or secrets.token_urlsafe(9)
        home = ensure_account(row["username"], password)
        if row["role"] == "instructor":
            make_course(home, row["username"], exchange)
        if not row["password"]:
            issued.append((row["username"], password))
    if issued:
        out = state / "passwords.csv"
        with out.open("w") as f:
            csv.writer(f).writerows([("username", "password"), *issued])
        out.chmod(0o600)
        print(f"generated passwords for {len(issued)} account(s): {out}")
    write_role_configs(state, exchange)
    env = dict(os.environ, WORKSHOP_STATE=str(state), WORKSHOP_PORT=str(port),
               WORKSHOP_EXCHANGE=str(exchange),
               WORKSHOP_USERS=",".join(f"{r['username']}:{r['role']}" for r in rows))
    log = state / "jupyterhub.log"
    started = time.time()
    with log.open("ab") as out:
        hub = subprocess.Popen([str(Path(sys.executable).parent / "jupyterhub"), "-f",
                                str(REPO / "workshop" / "jupyterhub_config.py")],
                               cwd=state, env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    (state / "hub.pid").write_text(str(hub.pid))
    wait_for_health(port, 60, log)
    print(f"JupyterHub is up in {time.time() - started:.1f} s: http://127.0.0.1:{port}/ "
          f"({len(rows)} accounts; log {log}; stop with 'make workshop-stop')")


def stop(state: Path, timeout: float = 30) -> None:
    """SIGTERM the hub; it stops every user's server and the proxy before it exits."""
    pid_file = state / "hub.pid"
    if not pid_file.exists():
        print("no workshop hub is running")
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline:
            os.kill(pid, 0)
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)  # it did not exit in time: end its whole group
    except ProcessLookupError:
        pass
    pid_file.unlink()
    print("workshop hub stopped")


def release(assignment: str) -> None:
    """As the instructor: generate the student version and put it in the exchange."""
    course = Path.home() / "mlfs-course"
    for step in ("generate_assignment", "release_assignment"):
        subprocess.run([str(Path(sys.executable).parent / "nbgrader"), step, assignment,
                        "--force"], cwd=course, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=REPO / ".workshop")
    parser.add_argument("--exchange", type=Path, default=Path("/srv/nbgrader/exchange"))
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start")
    p_start.add_argument("--roster", type=Path, required=True)
    p_start.add_argument("--port", type=int, default=8080)
    sub.add_parser("stop")
    p_release = sub.add_parser("release")
    p_release.add_argument("assignment")
    args = parser.parse_args()
    if args.command == "start":
        start(args.roster, args.port, args.state, args.exchange)
    elif args.command == "stop":
        stop(args.state)
    else:
        release(args.assignment)


if __name__ == "__main__":
    main()
