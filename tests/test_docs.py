"""The user documentation in docs/ stays in step with the code.

Fails when an option (flag or ini key), a marker, a fixture, a codec or an ``EvalResult`` attribute is
missing from docs/reference.md, or when a relative link (file or ``#anchor``) between the docs is
broken. Reads files only: no pytester run, no model, well under a second.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pytest_clipcompress import plugin
from pytest_clipcompress.codecs.registry import CODECS
from pytest_clipcompress.config.options import OPTIONS
from pytest_clipcompress.plugin.markers import marker_lines

DOCS = Path(__file__).resolve().parents[1] / "docs"
REFERENCE = DOCS / "reference.md"
PAGES = (
    "index.md",
    "getting-started.md",
    "reference.md",
    "floors.md",
    "paper-protocol.md",
    "ci.md",
    "offline.md",
    "errors.md",
    "property-testing.md",
    "attributions.md",
    "extending.md",
    "performance.md",
)
KNOWN_FIXTURES = {"clip_model", "clip_eval", "clip_dataset", "compression", "cifar10", "stl10", "clip_evaluator", "clip_breaking_point"}

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def prose_lines(text: str) -> list[str]:
    """Lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to dashes."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = re.sub(r"[*_]{2,}", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def mentions(text: str, token: str) -> bool:
    """``token`` appears as a whole option/key, not as the prefix of a longer one (--clip-model vs --clip-model-config)."""
    return re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text) is not None


def plugin_fixture_names() -> set[str]:
    """Fixtures the plugin module defines, found the way pytest marks them (pytest >= 8.4, and older)."""
    names = set()
    for attribute, value in vars(plugin).items():
        marker = getattr(value, "_fixture_function_marker", None) or getattr(value, "_pytestfixturefunction", None)
        if marker is None:
            continue
        names.add(getattr(marker, "name", None) or getattr(value, "name", None) or attribute)
    return names


def test_every_page_exists() -> None:
    missing = [name for name in PAGES if not (DOCS / name).is_file()]
    assert not missing, f"docs pages missing: {missing}"


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.flag)
def test_reference_documents_every_option_and_ini_key(option) -> None:  # noqa: ANN001 - settings.Option
    text = read("reference.md")
    assert mentions(text, option.flag), f"{option.flag} is not in docs/reference.md"
    assert mentions(text, option.ini), f"ini key {option.ini} is not in docs/reference.md"


def test_reference_documents_both_markers() -> None:
    text = read("reference.md")
    names = [marker.split("(", 1)[0] for marker in marker_lines()]
    assert sorted(names) == ["clip_dataset", "compression"]
    for name in names:
        assert f"@pytest.mark.{name}(" in text, f"marker {name} has no section in docs/reference.md"


def test_reference_has_a_section_per_fixture() -> None:
    found = plugin_fixture_names()
    assert found >= KNOWN_FIXTURES, f"fixture discovery broke: found only {sorted(found)}"
    headings = [line for line in prose_lines(read("reference.md")) if HEADING.match(line)]
    missing = [name for name in sorted(found) if not any(f"`{name}`" in line for line in headings)]
    assert not missing, f"fixtures without a heading in docs/reference.md: {missing}"


def test_reference_documents_every_codec() -> None:
    text = read("reference.md")
    missing = [codec for codec in CODECS if f"`{codec}`" not in text]
    assert not missing, f"codecs missing from docs/reference.md: {missing}"


def test_reference_documents_every_eval_result_attribute() -> None:
    from pytest_clipcompress.engine.result import EvalResult

    public = {field.name for field in dataclasses.fields(EvalResult)}
    public |= {name for name, value in vars(EvalResult).items() if not name.startswith("_") and (isinstance(value, property) or callable(value))}
    text = read("reference.md")
    missing = sorted(name for name in public if not re.search(rf"`{re.escape(name)}[`(]", text))
    assert not missing, f"EvalResult attributes missing from docs/reference.md: {missing}"


def test_relative_links_resolve() -> None:
    broken = []
    for page in sorted(DOCS.glob("*.md")):
        for line in prose_lines(page.read_text(encoding="utf-8")):
            for target in LINK.findall(INLINE_CODE.sub("code", line)):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
                    continue
                path_part, _, anchor = target.partition("#")
                linked = (page.parent / path_part).resolve() if path_part else page
                if path_part and not linked.exists():
                    broken.append(f"{page.name}: {target} (no such file)")
                    continue
                if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "broken links in docs/:\n" + "\n".join(broken)
