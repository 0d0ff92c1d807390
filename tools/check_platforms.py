"""Check that requirements.txt resolves to wheels on macOS (Apple Silicon) and Windows.

    python tools/check_platforms.py        # exit 1 if a platform does not resolve

The resolver is uv's (``uv pip compile --python-platform ... --only-binary :all:``), which
evaluates every environment marker, the dependencies' own included, for the *target*
platform, using the packages' published metadata; nothing is downloaded or installed. (pip's
``--platform`` evaluates markers for the machine it runs on, so on Linux it wrongly asks
for torch's CUDA libraries on macOS.) macOS is resolved for macOS 14: torch 2.13.0 publishes
``macosx_14_0_arm64`` wheels only, so older macOS releases and Intel Macs cannot install it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"macOS 14+ (Apple Silicon)": ("aarch64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "14.0"}),
           "Windows (x86-64)": ("x86_64-pc-windows-msvc", {})}


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(found).exists():
        sys.exit("uv is not installed: pip install uv (it is in requirements.txt)")
    return found


def resolve(platform: str, extra_env: dict[str, str]) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "resolved.txt"
        proc = subprocess.run(
            [uv(), "pip", "compile", str(ROOT / "requirements.txt"), "--python-platform",
             platform, "--python-version", "3.11", "--only-binary", ":all:", "--quiet",
             "--output-file", str(out)],
            capture_output=True, text=True, env=dict(os.environ, **extra_env))
        if proc.returncode != 0:
            return False, proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
        pins = dict(line.split("==", 1) for line in out.read_text().splitlines()
                    if "==" in line and not line.startswith("#"))
        return True, (f"{len(pins)} packages; torch {pins.get('torch')}, numpy {pins.get('numpy')}, "
                      f"triton {pins.get('triton', 'not needed')}")


def main() -> int:
    failed = 0
    for name, (platform, env) in TARGETS.items():
        ok, detail = resolve(platform, env)
        print(f"{name:27} {'ok  ' if ok else 'FAIL'} {detail}")
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
