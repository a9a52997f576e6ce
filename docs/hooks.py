"""MkDocs hooks: one source for every page, whether it is read on GitHub or on the site.

- ``BENCHMARKS.md`` and ``CHANGELOG.md`` live at the repository root (where GitHub shows them) and
  become the site's ``benchmarks.md`` and ``changelog.md``.
- Links are written for GitHub (``../BENCHMARKS.md`` from a docs page, ``docs/data.md`` from the
  root) and rewritten here to the site's pages, so ``mkdocs build --strict`` checks both.
- The API reference has one page per module of ``bifsmn_tf``, found on disk, so that a module
  added, split or renamed needs no edit here.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "bifsmn_tf"
#: Root files that are pages of the site, by their name there.
ROOT_PAGES = {"BENCHMARKS.md": "benchmarks.md", "CHANGELOG.md": "changelog.md"}
#: The API reference's sections in pipeline order; modules not listed come last.
API_ORDER = ("data", "features", "models", "training", "evaluate", "detection", "converters", "storage", "convert")
API_TITLE = "API reference"
LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?P<anchor>#[^)\s]*)?\)")


def modules() -> list[str]:
    """Dotted names of every public module of the package, in pipeline order."""
    names = []
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            continue
        if not any(part.startswith("_") for part in parts):
            names.append(".".join(parts))

    def stage(name: str) -> tuple[int, str]:
        section = name.split(".")[1]
        return (API_ORDER.index(section) if section in API_ORDER else len(API_ORDER), name)

    return sorted(names, key=stage)


def api_uri(module: str) -> str:
    """The site path of ``module``'s API page."""
    return f"api/{module}.md"


def site_link(target: str, repo_dir: str) -> str:
    """The site's link for ``target``, a link written for GitHub in a file of ``repo_dir``."""
    if "://" in target or target.startswith(("mailto:", "/")):
        return target
    resolved = posixpath.normpath(posixpath.join(repo_dir, target))
    if resolved in ROOT_PAGES:
        site_path = ROOT_PAGES[resolved]
    elif resolved.startswith("docs/"):
        site_path = resolved.removeprefix("docs/")
    else:
        return target  # not a page: left for ``mkdocs build --strict`` to report
    site_dir = repo_dir.removeprefix("docs").lstrip("/")
    return posixpath.relpath(site_path, site_dir or ".")


def rewrite_links(markdown: str, repo_dir: str) -> str:
    """Every Markdown link of ``markdown``, a file in ``repo_dir``, pointed at the site's pages."""

    def replace(match: re.Match) -> str:
        return f"]({site_link(match['target'], repo_dir)}{match['anchor'] or ''})"

    return LINK.sub(replace, markdown)


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Fill the nav's API reference section with a page per module."""
    for entry in config.nav:
        if isinstance(entry, dict) and API_TITLE in entry:
            entry[API_TITLE] = [{module: api_uri(module)} for module in modules()]
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the root pages and the API reference pages."""
    for source, name in ROOT_PAGES.items():
        markdown = rewrite_links((REPO / source).read_text(encoding="utf-8"), repo_dir="")
        files.append(File.generated(config, name, content=markdown))
    for module in modules():
        page = f"# `{module}`\n\n::: {module}\n"
        files.append(File.generated(config, api_uri(module), content=page))
    return files


def on_page_markdown(markdown: str, page: Page, **kwargs) -> str:
    """Rewrite a docs page's links to root files into links to their site pages."""
    if page.file.src_uri in ROOT_PAGES.values():
        return markdown  # rewritten when the page was generated
    return rewrite_links(markdown, repo_dir=posixpath.dirname(f"docs/{page.file.src_uri}"))
