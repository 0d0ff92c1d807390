"""The instructor's two commands (``make release``, ``make autograde``).

    python tools/course_cli.py release --out dist
        student versions of every assignment: dist/release/<name>/<name>.ipynb and
        dist/release.zip (nbgrader generate_assignment on a temporary copy of the course)

    python tools/course_cli.py autograde SUBMISSIONS --out dist [--timeout S] [--memory-mb M]
        grade every SUBMISSIONS/<student>/<assignment>/<assignment>.ipynb in one batch:
        feedback in dist/feedback/<student>/<assignment>/, grades in dist/grades.csv (one
        row per student and assignment), seconds per submission on the terminal. One bad
        notebook never stops the batch; see assignments/README.md for the design.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import course  # noqa: E402


def release_all(out: Path) -> list[Path]:
    """Generate every assignment's student version into ``out/release``; zip the folder."""
    target = out / "release"
    shutil.rmtree(target, ignore_errors=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="mlfs-release-") as tmp:
        root = course.new_course(Path(tmp) / "course")
        for name, notebook in course.release_many(root, course.assignment_names()).items():
            (target / name).mkdir(parents=True)
            written.append(Path(shutil.copy(notebook, target / name / notebook.name)))
    with zipfile.ZipFile(out / "release.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path in written:
            archive.write(path, path.relative_to(target))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rel = commands.add_parser("release", help="student versions of every assignment")
    rel.add_argument("--out", type=Path, default=Path("dist"))
    grade = commands.add_parser("autograde", help="grade a folder of submissions")
    grade.add_argument("submissions", type=Path)
    grade.add_argument("--out", type=Path, default=Path("dist"))
    grade.add_argument("--timeout", type=int, default=None, help="seconds per cell")
    grade.add_argument("--memory-mb", type=int, default=None, help="memory cap of a kernel")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "release":
        for path in release_all(args.out):
            print(f"wrote {path}")
        print(f"wrote {args.out / 'release.zip'}")
        return 0
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder of <student>/<assignment>/ folders")
    import grading
    import sandbox

    try:
        started = time.monotonic()
        subs = grading.grade_batch(args.submissions, args.out, cell_timeout=args.timeout,
                                   memory_mb=args.memory_mb)
    except sandbox.SandboxUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except grading.GradingRefused as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    elapsed = time.monotonic() - started
    print(f"graded {len(subs)} submissions in {elapsed:.1f} s "
          f"({elapsed / max(len(subs), 1):.2f} s per submission); "
          f"grades in {args.out / 'grades.csv'}, feedback in {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
