"""Repository hygiene: notebooks stripped, the table of contents complete, the house rules."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from toc import toc_files  # noqa: E402


def tracked(pattern: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True)
    return [ROOT / line for line in out.stdout.split()]


NOTEBOOKS = sorted(set(tracked("*.ipynb")) | set(ROOT.glob("chapters/**/*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"cells with outputs or execution counts: {dirty} (strip them)"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3"


def test_every_chapter_is_in_the_table_of_contents_and_exists():
    listed = set(toc_files())
    on_disk = {str(p.relative_to(ROOT).with_suffix(""))
               for p in ROOT.glob("chapters/**/*") if p.suffix in (".ipynb", ".md")}
    assert listed - on_disk == set(), "listed in _toc.yml but missing"
    assert on_disk - listed == set(), "chapter files not listed in _toc.yml"


CHAPTERS = sorted(ROOT.glob("chapters/part*/*.ipynb"))


def _markdown(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path", [p for p in CHAPTERS if p.stem != "self_check"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_has_the_required_closing_sections(path):
    text = _markdown(path)
    for needle in ("## Exercises", "Common pitfalls", "## Interview drills", "## References",
                   ":class: dropdown", "notation.md"):
        assert needle in text, f"{path.name} lacks {needle!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_uses_no_widget_progress_bars(path):
    """tqdm.auto / tqdm.notebook need widget JavaScript from a CDN on the static site."""
    nb = json.loads(path.read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "tqdm.auto" not in code and "tqdm.notebook" not in code and "ipywidgets" not in code


LINK = re.compile(r"\]\((?!https?:|#|mailto:)([^)\s#]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("path", sorted(ROOT.glob("assignments/source/*/*.ipynb")),
                         ids=lambda p: p.parent.name)
def test_assignment_links_to_chapters_resolve(path):
    """A learner clicking 'the chapter derives this' in an assignment lands on the chapter."""
    text = _markdown(path)
    broken = [target for target in LINK.findall(text) if not (path.parent / target).exists()]
    assert not broken, f"{path.name}: relative links that point nowhere: {broken}"
