"""The documentation stands on its own: every link in README.md and docs/ resolves inside the
repository, and every document cited by name in the configs is shipped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
#: [text](target) links, skipping images' and code spans' look-alikes by requiring a target.
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def _links(path: Path) -> list[str]:
    text = _CODE.sub("", path.read_text(encoding="utf-8"))
    return _LINK.findall(text)


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_every_link_resolves_inside_the_repository(doc: Path) -> None:
    bad = []
    for target in _links(doc):
        if re.match(r"[a-z]+:", target):
            continue  # http(s):, mailto: ... are outside by design
        file_part = target.split("#", 1)[0]
        if not file_part:
            continue  # an anchor in the same page
        resolved = (doc.parent / file_part).resolve()
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            bad.append(target)
    assert bad == []


def test_documents_cited_in_configs_are_shipped() -> None:
    cited = set()
    for config in (REPO / "config").rglob("*.yaml"):
        cited |= set(re.findall(r"\b([\w/.-]+\.md)\b", config.read_text(encoding="utf-8")))
    assert cited
    missing = [name for name in sorted(cited) if not (REPO / name).is_file()]
    assert missing == []


def test_the_link_checker_catches_an_outside_link(tmp_path: Path) -> None:
    page = tmp_path / "x.md"
    page.write_text("see [design](../shared/DESIGN.md) and `[not](a-link.md)`\n")
    assert _links(page) == ["../shared/DESIGN.md"]
