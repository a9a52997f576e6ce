"""The documentation: the site builds strictly, every relative link resolves, the README is short.

Links are checked as GitHub resolves them (relative to the file, anchors by GitHub's heading
slugs); ``mkdocs build --strict`` checks them again as the site resolves them (docs/hooks.py
rewrites the links to root files).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pymdownx.slugs import slugify

REPO = Path(__file__).resolve().parents[1]
#: The README must fit a screen and a half: what it is, the two commands, outputs, figures, limits.
README_MAX_LINES = 150
#: Lines of a terminal screen: the set-up commands must be on the first.
FIRST_SCREEN_LINES = 24

FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", flags=re.M)
github_slug = slugify(case="lower")


def markdown_files() -> list[Path]:
    """The Markdown a reader follows links through: root pages, the docs, the deploy pointer."""
    root = [REPO / name for name in ("README.md", "BENCHMARKS.md", "CHANGELOG.md")]
    return root + sorted((REPO / "docs").rglob("*.md")) + [REPO / "deploy" / "README.md"]


def prose(markdown: str) -> str:
    """``markdown`` without code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def heading_text(heading: str) -> str:
    """What a heading reads as once rendered: no backticks, emphasis or link targets."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[`*]", "", text)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of ``path``: a repeated slug gets ``-1``, ``-2``, ..."""
    found: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = candidate = github_slug(heading_text(heading), "-")
        repeat = 0
        while candidate in found:
            repeat += 1
            candidate = f"{slug}-{repeat}"
        found.add(candidate)
    return found


def broken_links(path: Path) -> list[str]:
    """Every relative link of ``path`` whose file or heading does not exist, with the reason."""
    problems = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{target}: no heading with that anchor in {linked.relative_to(REPO)}")
    return [f"{path.relative_to(REPO)}: {problem}" for problem in problems]


def test_every_relative_link_resolves():
    problems = [problem for path in markdown_files() for problem in broken_links(path)]
    assert not problems, "\n".join(problems)


def test_the_link_checker_catches_a_missing_file_and_a_missing_heading(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[fine](other.md#a-code-heading) [gone](missing.md) [no anchor](other.md#nowhere)\n"
        "[own](#title) `[not a link](missing.md)`\n\n# Title\n"
    )
    assert broken_links(page) == [
        "page.md: missing.md: no such file",
        "page.md: other.md#nowhere: no heading with that anchor in other.md",
    ]


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md: {len(lines)} lines, over {README_MAX_LINES}"
    first_screen = "\n".join(lines[:FIRST_SCREEN_LINES])
    assert "make demo" in first_screen and "make test" in first_screen


def test_site_builds_strictly_with_an_api_reference(tmp_path):
    site = tmp_path / "site"
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The root pages become site pages, and each module gets an API page from its docstrings.
    assert (site / "benchmarks" / "index.html").is_file()
    assert (site / "changelog" / "index.html").is_file()
    features = (site / "api" / "bifsmn_tf.features" / "index.html").read_text(encoding="utf-8")
    assert "LogMelSpectrogram" in features


@pytest.mark.parametrize(
    "heading, slug",
    [
        ("`paper` vs `lean` profile", "paper-vs-lean-profile"),
        ("2026-11-27: the demo's recipe", "2026-11-27-the-demos-recipe"),
        ("Thinnable depth (TBA)", "thinnable-depth-tba"),
    ],
)
def test_anchors_follow_githubs_slugs(tmp_path, heading, slug):
    page = tmp_path / "page.md"
    page.write_text(f"# {heading}\n\n## {heading}\n")
    assert anchors(page) == {slug, f"{slug}-1"}
