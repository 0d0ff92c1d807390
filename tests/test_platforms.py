"""requirements.txt resolves to wheels on macOS (Apple Silicon) and Windows, where learners
run the book without Triton (tools/check_platforms.py; needs the package index)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_requirements_resolve_for_macos_and_windows():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "check_platforms.py")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" ok ") == 2 and "triton not needed" in proc.stdout
