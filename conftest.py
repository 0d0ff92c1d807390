"""Suite-wide hooks: a time budget per chapter notebook (run under `pytest --nbval-lax`)."""
from __future__ import annotations

from collections import defaultdict

NOTEBOOK_BUDGET_S = 60.0
_notebook_time: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_time[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_time:
        return
    terminalreporter.section("chapter notebooks: execution time")
    for path, seconds in sorted(_notebook_time.items(), key=lambda kv: -kv[1]):
        flag = "  OVER BUDGET" if seconds > NOTEBOOK_BUDGET_S else ""
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}{flag}")


def pytest_sessionfinish(session, exitstatus):
    over = {p: s for p, s in _notebook_time.items() if s > NOTEBOOK_BUDGET_S}
    if over and session.exitstatus == 0:
        session.exitstatus = 1
