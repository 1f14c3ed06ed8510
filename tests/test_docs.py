"""The documentation (issue 19): the mkdocs site in docs/ builds with --strict (a broken link or
anchor, or a docstring griffe cannot parse, fails), every object on its API page has a
docstring, and the README stays short with every relative link pointing at a file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# [text](target) and ![alt](target); the target ends at the first space or closing parenthesis
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "site" / "python" / "index.html").is_file()


def test_readme_is_at_most_200_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 200, f"README.md has {n} lines; the rest belongs in docs/ (issue 19)"


def relative_links(text: str) -> list[str]:
    """The link targets in markdown ``text`` that are paths in the repository (no URL, no
    in-page anchor), without their ``#anchor``."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links in code blocks are code
    out = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        out.append(target.split("#", 1)[0])
    return out


#: The repository's own files as PyPI and the napari hub can show them: README's links and images
#: are absolute, since relative ones break there (issue 34).
REPO_URLS = (
    "https://github.com/napari-genprior/napari-genprior/blob/main/",
    "https://github.com/napari-genprior/napari-genprior/tree/main/",
    "https://raw.githubusercontent.com/napari-genprior/napari-genprior/main/",
)


def repository_links(text: str) -> list[str]:
    """The repository paths that markdown ``text`` links to by absolute URL, without anchors."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    out = []
    for target in LINK.findall(text):
        for base in REPO_URLS:
            if target.startswith(base):
                out.append(target[len(base) :].split("#", 1)[0])
    return out


def test_readme_links_are_absolute_and_point_at_files():
    text = README.read_text(encoding="utf-8")
    assert relative_links(text) == [], "relative links break on PyPI and the napari hub"
    links = repository_links(text)
    assert len(links) >= 10  # the parser finds the links at all
    missing = [t for t in links if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images and all(i.startswith(REPO_URLS[2]) for i in images)  # raw files, not pages


def test_relative_links_finds_broken_ones():
    text = "[a](docs/nope.md) ![b](x.png#y) [c](https://e.org) [d](#here)\n```\n[e](f.md)\n```"
    assert relative_links(text) == ["docs/nope.md", "x.png"]


def test_every_object_on_the_api_pages_has_a_docstring():
    """mkdocstrings leaves out what has no docstring without a word; this makes it fail."""
    import griffe

    idents = sorted(
        {
            i
            for page in (ROOT / "docs").glob("*.md")
            for i in re.findall(r"^:::\s*([\w.]+)", page.read_text(encoding="utf-8"), re.M)
        }
    )
    assert "napari_genprior.reconstruct" in idents
    package = griffe.load(
        "napari_genprior",
        search_paths=[str(ROOT / "src")],
        resolve_aliases=True,
        resolve_external=False,
    )

    def undocumented(obj) -> list[str]:
        obj = obj.final_target if obj.is_alias else obj
        out = [] if obj.docstring and obj.docstring.value.strip() else [obj.path]
        if obj.is_module or obj.is_class:
            for name, member in obj.members.items():
                if name.startswith("_") or (member.is_alias and obj.is_module):
                    continue  # private, or imported (documented where it lives)
                if member.is_attribute:
                    continue
                out += undocumented(member)
        return out

    missing = [
        path
        for ident in idents
        for path in undocumented(package[ident.removeprefix("napari_genprior.")])
    ]
    assert not missing, f"no docstring (the docs would leave these out): {missing}"
