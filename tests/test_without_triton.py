"""The book without Triton, as on macOS and Windows (Triton ships Linux wheels only).

In a subprocess whose ``import triton`` fails (``tests/no_triton/sitecustomize.py``), the
attention tests of ``lib`` pass, ``flash_attention`` raises an error that says what to do,
and every Part III chapter executes, the FlashAttention chapter showing its Triton cells
without running them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
ATTENTION_TESTS = ["tests/test_lib_attention.py", "tests/test_lib_kv_cache.py",
                   "tests/test_lib_blocked_backward.py", "tests/test_lib_round2_masks_norm.py",
                   "tests/test_lib_rope.py", "tests/test_lib_model.py"]


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "no_triton"))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_triton_is_really_blocked_and_flash_attention_says_what_to_use():
    code = """
import torch
try:
    import triton
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("triton imported")
import lib.attention as A
q = torch.randn(1, 1, 4, 16)
print(A.blocked_attention(q, q, q)[0].shape)
try:
    A.flash_attention(q, q, q)
except ModuleNotFoundError as e:
    print("ERROR:", e)
"""
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch.Size([1, 1, 4, 16])" in proc.stdout
    assert "ERROR: flash_attention needs Triton" in proc.stdout
    assert "blocked_attention" in proc.stdout


def test_attention_lib_tests_pass_without_triton():
    proc = _run("-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                *[t for t in ATTENTION_TESTS if (ROOT / t).exists()])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_part3_chapters_run_without_triton():
    chapters = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "chapters" / "part3_attention").glob("*.ipynb"))
    proc = _run("-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                "--nbval-lax", *chapters)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
