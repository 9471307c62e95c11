"""The documentation: the generated reference pages are current, the README is a short
front page whose links resolve, and the site's navigation names every page."""

import os
import re

import pytest
import yaml
from reference_docs import DOCS, ROOT, pages

UPDATE = os.environ.get("LENSCOPE_UPDATE_DOCS") == "1"


@pytest.mark.parametrize("name", sorted(pages()))
def test_reference_page_is_current(name):
    want = pages()[name]
    path = DOCS / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(want)
    assert path.exists() and path.read_text() == want, \
        f"docs/{name} is stale: LENSCOPE_UPDATE_DOCS=1 pytest tests/test_docs.py"


def test_no_stale_reference_page_is_left():
    on_disk = {str(p.relative_to(DOCS)) for p in (DOCS / "reference").rglob("*.md")}
    assert on_disk == set(pages()), "a reference page no code generates"


def test_readme_is_a_short_front_page_with_working_links():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    commands = re.search(r"```sh\n(.*?)```", text, re.DOTALL).group(1).strip().splitlines()
    assert commands[0].endswith("pip install . && lenscope") and commands[1].endswith("&& pytest")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to {target}, which is not in the repository"


def test_every_page_is_in_the_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def walk(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for n in node:
                yield from walk(n)
        elif isinstance(node, dict):
            for v in node.values():
                yield from walk(v)

    listed = set(walk(config["nav"]))
    assert listed == {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}


@pytest.mark.parametrize("asset, snapshot", [("compare.svg", "test_compare_after_run[size1].svg"),
                                             ("heatmap.svg", "test_heatmap[size1].svg")])
def test_screenshots_are_the_snapshot_tests_own(asset, snapshot):
    """The pictures in the README and on the site are the SVG snapshot tests' (120 x 40):
    after `--snapshot-update`, copy them again (LENSCOPE_UPDATE_DOCS=1 does)."""
    want = (ROOT / "tests" / "__snapshots__" / "test_snapshots" / snapshot).read_bytes()
    path = DOCS / "assets" / asset
    if UPDATE:
        path.write_bytes(want)
    assert path.read_bytes() == want, f"docs/assets/{asset} is not the current snapshot"
