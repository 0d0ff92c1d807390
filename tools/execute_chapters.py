"""Execute every chapter listed in _toc.yml into Jupyter Book's execution cache, in parallel.

    python tools/execute_chapters.py [--build-dir _build]

`jupyter-book build` (with `execute_notebooks: cache`) executes notebooks one after the
other. This script fills the same cache (`<build-dir>/.jupyter_cache`, keyed by the
content of each notebook's code cells) using one process per CPU core, so the build that
follows only merges stored outputs. A chapter that raises fails the script, with the
chapter's traceback, exactly as the build would.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor

from toc import ROOT, toc_files


def toc_notebooks() -> list[Path]:
    """The chapters of ``_toc.yml`` that are notebooks (Markdown pages need no execution)."""
    return [ROOT / f"{f}.ipynb" for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default=str(ROOT / "_build"))
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell")
    args = parser.parse_args()

    cache = get_cache(str(Path(args.build_dir) / ".jupyter_cache"))
    for notebook in toc_notebooks():
        cache.add_nb_to_project(str(notebook))
    start = time.time()
    executor = load_executor("local-parallel", cache)
    result = executor.run_and_cache(timeout=args.timeout, allow_errors=False)
    print(f"executed {len(result.succeeded)} chapter(s) in {time.time() - start:.0f} s; "
          f"{len(result.excepted) + len(result.errored)} failed")
    failed = result.excepted + result.errored
    for uri in failed:
        record = cache.get_project_record(uri)
        print(f"\n=== {uri}\n{record.traceback}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
