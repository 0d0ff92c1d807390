"""The workshop end to end, on a real JupyterHub on loopback, driven through headless Chromium.

One instructor and two learners from a roster. The instructor releases an assignment with
nbgrader; each learner logs in on the hub's login page, fetches the assignment, saves an
answer (one correct, one wrong) and submits it, all from their logged-in browser page with
the requests JupyterLab's Assignments tab sends; the instructor collects and grades with the
course's sandboxed grader. The grades must equal what ``make autograde`` gives the same
notebooks, and no learner may read another's work.

Needs root (it creates system accounts, as ``make workshop`` does); skipped otherwise.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "workshop"))
import hub  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ASSIGNMENT = "numerics"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _free_port_base() -> int:
    """A port p such that p, p+1 and p+2 are free (proxy, hub, proxy API)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 60000:
            continue
        try:
            for offset in (1, 2):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError("no three consecutive free ports")


def _as_user(user: str, *command: str, cwd: Path | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    env = ["env", f"HOME=/home/{user}", f"PATH={VENV_BIN}:/usr/bin:/bin"]
    return subprocess.run(["runuser", "-u", user, "--", *env, *command], cwd=cwd,
                          capture_output=True, text=True, check=check)


def _answers(fetched: dict, wrong: bool) -> dict:
    """The fetched student notebook with the instructor's solution in every answer cell;
    ``wrong`` replaces one answer with a known-wrong one (a mutant of the assignment)."""
    source = json.loads((ROOT / "assignments" / "source" / ASSIGNMENT /
                         f"{ASSIGNMENT}.ipynb").read_text())
    solutions = {c["metadata"]["nbgrader"]["grade_id"]: c["source"] for c in source["cells"]
                 if c["metadata"].get("nbgrader", {}).get("solution")}
    if wrong:
        mutant = sorted((ROOT / "assignments" / "mutants" / ASSIGNMENT).glob("*.py"))[0]
        lines = mutant.read_text().splitlines(keepends=True)
        replaces = lines[1].split(":", 1)[1].strip()
        solutions[replaces] = "".join(lines[3:])
    for cell in fetched["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id in solutions:
            cell["source"] = solutions[grade_id]
    return fetched


def _grades(submissions: Path, out: Path) -> dict[str, tuple[float, float]]:
    subprocess.run([sys.executable, "-m", "grader.cli", "autograde",
                    str(submissions), "--out", str(out)], check=True, capture_output=True,
                   text=True, cwd=ROOT)
    with (out / "grades.csv").open() as f:
        return {r["student_id"]: (float(r["score"]), float(r["max_score"]))
                for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def workshop():
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("the workshop creates system accounts: needs root and useradd")
    if not (ROOT / ".npm-hub" / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        pytest.fail("configurable-http-proxy is missing: 'make test' installs it (make workshop-deps)")
    tag = secrets.token_hex(3)
    users = {"instructor": f"mlfsi{tag}", "good": f"mlfsg{tag}", "bad": f"mlfsb{tag}"}
    passwords = {name: secrets.token_urlsafe(9) for name in users.values()}
    tmp = Path(tempfile.mkdtemp(prefix="mlfs-workshop-"))
    tmp.chmod(0o755)
    roster = tmp / "roster.csv"
    roster.write_text("username,role,password\n" + "".join(
        f"{name},{'instructor' if key == 'instructor' else 'learner'},{passwords[name]}\n"
        for key, name in users.items()))
    state, exchange = tmp / "state", tmp / "exchange"
    # The course's Python may sit under a folder other users cannot enter (/root/.pyenv):
    # open traversal for the duration of the test, as the error message of hub.py advises.
    blocked = hub.untraversable([Path(sys.executable).resolve(), ROOT / ".venv"])
    for folder in blocked:
        folder.chmod(folder.stat().st_mode | 0o001)
    port = _free_port_base()
    try:
        subprocess.run([sys.executable, str(ROOT / "workshop" / "hub.py"), "--state",
                        str(state), "--exchange", str(exchange), "start", "--roster",
                        str(roster), "--port", str(port)], check=True, timeout=120)
        yield {"users": users, "passwords": passwords, "url": f"http://127.0.0.1:{port}",
               "exchange": exchange, "tmp": tmp}
    finally:
        subprocess.run([sys.executable, str(ROOT / "workshop" / "hub.py"), "--state",
                        str(state), "stop"], timeout=60)
        for name in users.values():
            subprocess.run(["pkill", "-u", name], capture_output=True)
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        for folder in blocked:
            folder.chmod(folder.stat().st_mode & ~0o001)
        shutil.rmtree(tmp, ignore_errors=True)


class Learner:
    """A learner's logged-in browser page; requests go out with the page's cookies."""

    def __init__(self, browser, url: str, name: str, password: str):
        self.name, self.page = name, browser.new_page()
        self.page.goto(f"{url}/hub/login")
        self.page.fill("input[name=username]", name)
        self.page.fill("input[name=password]", password)
        self.page.click("input[type=submit], button[type=submit]")
        self.page.wait_for_url(f"**/user/{name}/lab**", timeout=90_000)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
        """``fetch`` from inside the page, with the XSRF header JupyterLab sends."""
        return self.page.evaluate(
            """async ([method, path, body]) => {
                 const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
                 const r = await fetch(path, {method, credentials: "same-origin",
                     headers: {"X-XSRFToken": decodeURIComponent(xsrf),
                               "Content-Type": "application/json"},
                     body: body === null ? undefined : JSON.stringify(body)});
                 return [r.status, await r.text()];
               }""", [method, path, body])


def test_release_fetch_submit_collect_grade_and_no_leaks(workshop):
    from playwright.sync_api import sync_playwright

    users, course = workshop["users"], Path("/home") / workshop["users"]["instructor"] / "mlfs-course"
    released = _as_user(users["instructor"], str(VENV_BIN / "python"),
                        str(ROOT / "workshop" / "hub.py"), "release", ASSIGNMENT, cwd=course)
    assert "Released as" in released.stderr + released.stdout, released.stderr[-2000:]

    written = workshop["tmp"] / "written"        # what each learner saved, for the comparison
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        learners = {key: Learner(browser, workshop["url"], users[key],
                                 workshop["passwords"][users[key]]) for key in ("good", "bad")}
        for key, learner in learners.items():
            base = f"/user/{learner.name}"
            status, listing = learner.request("GET", f"{base}/assignments?course_id=mlfs")
            assert status == 200 and ASSIGNMENT in listing, (status, listing[:500])
            status, _ = learner.request("POST", f"{base}/assignments/fetch",
                                        {"course_id": "mlfs", "assignment_id": ASSIGNMENT})
            assert status == 200
            path = f"{base}/api/contents/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
            status, text = learner.request("GET", path)
            assert status == 200, (status, text[:300])
            notebook = _answers(json.loads(text)["content"], wrong=(key == "bad"))
            status, text = learner.request("PUT", path, {"type": "notebook", "format": "json",
                                                         "content": notebook})
            assert status == 200, (status, text[:300])
            target = written / learner.name / ASSIGNMENT
            target.mkdir(parents=True)
            (target / f"{ASSIGNMENT}.ipynb").write_text(json.dumps(notebook))
            status, text = learner.request("POST", f"{base}/assignments/submit",
                                           {"course_id": "mlfs", "assignment_id": ASSIGNMENT})
            assert status == 200 and '"success": false' not in text, text[:500]

        # No leaks between learners: the hub refuses one learner's page on another's
        # server, and the accounts cannot read each other's files or the exchange's inbox.
        good, bad = learners["good"], learners["bad"]
        status, _ = bad.request("GET", f"/user/{good.name}/api/contents/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
        assert status in (403, 404), f"learner read another learner's notebook: HTTP {status}"
        browser.close()
    peek = _as_user(bad.name, "cat", f"/home/{good.name}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
                    check=False)
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    inbox = _as_user(bad.name, "ls", str(workshop["exchange"] / "mlfs" / "inbound"), check=False)
    assert inbox.returncode != 0 and "Permission denied" in inbox.stderr

    collected = _as_user(users["instructor"], str(VENV_BIN / "nbgrader"), "collect",
                         ASSIGNMENT, cwd=course)
    assert collected.returncode == 0, collected.stderr[-2000:]
    submitted = course / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == sorted([good.name, bad.name])

    via_hub = _grades(submitted, workshop["tmp"] / "grades-hub")
    direct = _grades(written, workshop["tmp"] / "grades-direct")   # make autograde's path
    assert via_hub == direct, (via_hub, direct)
    score, max_score = via_hub[good.name]
    assert score == max_score > 0
    assert via_hub[bad.name][0] < max_score


def test_kubernetes_values_agree_with_the_image_and_nbgrader():
    """The chart cannot be fetched here to validate against its schema; check what can be:
    the values parse, and the image, the exchange volume and nbgrader agree."""
    import yaml

    k8s = ROOT / "workshop" / "k8s"
    values = yaml.safe_load((k8s / "values.yaml").read_text())
    single = values["singleuser"]
    mounts = {m["name"]: m["mountPath"] for m in single["storage"]["extraVolumeMounts"]}
    config = (k8s / "nbgrader_config.py").read_text()
    assert f'c.Exchange.root = "{mounts["nbgrader-exchange"]}"' in config
    assert 'c.CourseDirectory.course_id = "mlfs"' in config
    assert {v["name"] for v in single["storage"]["extraVolumes"]} == set(mounts)
    dockerfile = (k8s / "Dockerfile").read_text()
    assert "COPY requirements.txt" in dockerfile and "/etc/jupyter/nbgrader_config.py" in dockerfile
    assert single["defaultUrl"] == "/lab"
    assert any("formgrader" in str(p.get("kubespawner_override", {}))
               for p in single["profileList"])


def test_roster_errors_name_the_line():
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "roster.csv"
        bad.write_text("username,role,password\nAda Lovelace,learner,\n")
        with pytest.raises(ValueError, match=r"roster.csv:2: username"):
            hub.read_roster(bad)
        bad.write_text("username,role,password\nada,student,\n")
        with pytest.raises(ValueError, match=r"roster.csv:2: role must be one of"):
            hub.read_roster(bad)
        bad.write_text("username,role,password\nada,learner,\n")
        with pytest.raises(ValueError, match="at least one instructor"):
            hub.read_roster(bad)
        example = hub.read_roster(ROOT / "workshop" / "roster.example.csv")
        assert [r["role"] for r in example] == ["instructor", "learner", "learner"]
