"""The instructor's two commands (``make release``, ``make autograde``).

    python -m grader.cli release --out dist
        student versions of every assignment: dist/release/<name>/<name>.ipynb and
        dist/release.zip (nbgrader generate_assignment on a temporary copy of the course)

    python -m grader.cli autograde SUBMISSIONS --out dist [--timeout S] [--memory-mb M]
                                         [--jobs N]
        grade every SUBMISSIONS/<student>/<assignment>/<assignment>.ipynb in one batch:
        feedback in dist/feedback/<student>/<assignment>/, grades in dist/grades.csv (one
        row per student and assignment), seconds per submission on the terminal. One bad
        notebook never stops the batch; see assignments/README.md for the design.
        --jobs N splits the students into N shards graded at once, each exactly as a
        batch of its own (same sandbox, same reference-solution check), with a progress
        bar; the grades are those of one serial batch.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from grader import course


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


def _copy_keeping_links(src: Path, dst: Path) -> None:
    """Copy a student's folder; a symbolic link stays a link to the same place."""
    if src.is_symlink():
        dst.symlink_to(src.parent.absolute() / os.readlink(src))
    elif src.is_dir():
        dst.mkdir()
        for child in sorted(src.iterdir()):
            _copy_keeping_links(child, dst / child.name)
    elif src.exists():
        shutil.copy2(src, dst)


def _shard(submissions: Path, jobs: int, tmp: Path) -> list[Path]:
    """Deal the students of ``submissions`` round-robin into ``jobs`` folders."""
    students = sorted(p for p in submissions.iterdir() if p.is_dir())
    shards = [tmp / f"shard-{i}" for i in range(min(jobs, max(len(students), 1)))]
    for folder in shards:
        folder.mkdir()
    for i, student in enumerate(students):
        _copy_keeping_links(student, shards[i % len(shards)] / student.name)
    return shards


def _merge(outs: list[Path], out: Path) -> None:
    """One grades.csv, details.json and feedback folder from the shards' outputs."""
    rows, details = [], {}
    for shard_out in outs:
        with (shard_out / "grades.csv").open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows += list(reader)
        details.update(json.loads((shard_out / "details.json").read_text()))
        if (shard_out / "feedback").is_dir():
            shutil.copytree(shard_out / "feedback", out / "feedback", dirs_exist_ok=True)
    with (out / "grades.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(sorted(rows, key=lambda row: (row[0], row[1])))
    (out / "details.json").write_text(json.dumps(details, indent=1))


def grade_in_parallel(submissions: Path, out: Path, jobs: int, extra: list[str]) -> int:
    """``autograde`` on ``jobs`` shards of the students at once; the exit code of a batch."""
    from tqdm import tqdm

    from grader import pipeline

    total = len(pipeline.find_submissions(submissions))
    (out / "grades.csv").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlfs-jobs-") as tmp:
        shards = _shard(submissions, jobs, Path(tmp))
        outs = [Path(tmp) / f"out-{i}" for i in range(len(shards))]
        procs = [subprocess.Popen([sys.executable, "-m", "grader.cli", "autograde", str(shard), "--out",
                                   str(shard_out), *extra], cwd=course.ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, errors="replace")
                 for shard, shard_out in zip(shards, outs)]
        bar = tqdm(total=total, unit="submission", desc="grading", file=sys.stderr)
        lock = threading.Lock()

        def follow(proc: subprocess.Popen) -> None:
            for line in proc.stdout:
                if not line.startswith("graded "):  # one line per graded submission
                    with lock:
                        bar.update(1)

        readers = [threading.Thread(target=follow, args=(p,)) for p in procs]
        for reader in readers:
            reader.start()
        errors = [p.stderr.read() for p in procs]
        codes = [p.wait() for p in procs]
        for reader in readers:
            reader.join()
        bar.close()
        failed = next((i for i, code in enumerate(codes) if code != 0), None)
        if failed is not None:
            print(errors[failed].strip().splitlines()[-1] if errors[failed].strip()
                  else f"error: shard {failed} exited with status {codes[failed]}", file=sys.stderr)
            return codes[failed]
        _merge(outs, out)
    return 0


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
    grade.add_argument("--jobs", type=int, default=1, help="students graded at once, in shards")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "release":
        for path in release_all(args.out):
            print(f"wrote {path}")
        print(f"wrote {args.out / 'release.zip'}")
        return 0
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder of <student>/<assignment>/ folders")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.jobs > 1:
        extra = [*(["--timeout", str(args.timeout)] if args.timeout else []),
                 *(["--memory-mb", str(args.memory_mb)] if args.memory_mb else [])]
        started = time.monotonic()
        code = grade_in_parallel(args.submissions, args.out, args.jobs, extra)
        if code == 0:
            print(f"graded in {time.monotonic() - started:.1f} s with {args.jobs} jobs; grades "
                  f"in {args.out / 'grades.csv'}, feedback in {args.out / 'feedback'}")
        return code
    from grader import pipeline
    from grader import sandbox

    try:
        started = time.monotonic()
        subs = pipeline.grade_batch(args.submissions, args.out, cell_timeout=args.timeout,
                                   memory_mb=args.memory_mb)
    except sandbox.SandboxUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except pipeline.GradingRefused as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    elapsed = time.monotonic() - started
    print(f"graded {len(subs)} submissions in {elapsed:.1f} s "
          f"({elapsed / max(len(subs), 1):.2f} s per submission); "
          f"grades in {args.out / 'grades.csv'}, feedback in {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
