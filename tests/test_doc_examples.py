"""Every Python example in README.md and docs/ that defines tests runs as written against the demo model.

An example that cannot run here (it needs CIFAR-10 or a real CLIP model, say) says so in the
Markdown source, on the line right before its fence: ``<!-- illustrative: needs CIFAR-10 and a real CLIP model -->``.
Everything else is copied into a test file unchanged and run in one pytest session with the
bundled demo model, offline: each of its tests must pass or fail as its own ``xfail`` says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ILLUSTRATIVE = re.compile(r"^<!--\s*illustrative:\s*(.*?)\s*-->$")
DEFINES_TESTS = re.compile(r"^(async\s+)?def test_\w*\(", re.MULTILINE)
SAMPLES = 100  # a quarter of the demo set keeps the run short; the examples' floors hold either way


@dataclass(frozen=True)
class Example:
    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    illustrative: str | None  # the reason, when marked
    before: str  # the paragraph above the fence

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def python_examples(page: Path) -> list[Example]:
    lines = page.read_text(encoding="utf-8").splitlines()
    examples, index = [], 0
    while index < len(lines):
        if lines[index].strip() != "```python":
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        previous = [line for line in lines[:index] if line.strip()]
        marker = ILLUSTRATIVE.match(previous[-1].strip()) if previous else None
        paragraph = []
        for line in reversed(lines[:index]):
            if not line.strip() and paragraph:
                break
            paragraph.insert(0, line)
        examples.append(Example(page, index + 1, "\n".join(lines[index + 1 : end]) + "\n", marker.group(1) if marker else None, "\n".join(paragraph)))
        index = end + 1
    return examples


EXAMPLES = [example for page in PAGES for example in python_examples(page)]
TEST_EXAMPLES = [example for example in EXAMPLES if DEFINES_TESTS.search(example.code)]
RUNNABLE = [example for example in TEST_EXAMPLES if example.illustrative is None]


def test_examples_are_found() -> None:
    assert len(TEST_EXAMPLES) >= 10 and RUNNABLE, [example.name for example in TEST_EXAMPLES]


def test_every_illustrative_marker_gives_a_reason_and_precedes_a_python_example() -> None:
    problems = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            match = ILLUSTRATIVE.match(line.strip())
            if not match:
                continue
            following = next((later.strip() for later in lines[number:] if later.strip()), "")
            if not match.group(1):
                problems.append(f"{page.name}:{number}: an illustrative marker needs a reason")
            if following != "```python":
                problems.append(f"{page.name}:{number}: an illustrative marker must come right before a ```python fence")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("example", [e for e in TEST_EXAMPLES if re.search(r"examples/\w+\.py", e.before)], ids=lambda e: e.name)
def test_examples_said_to_be_in_a_file_are_in_it(example: Example) -> None:
    """'Both are in examples/test_search.py' must be true of every test function the example shows."""
    (path,) = set(re.findall(r"examples/\w+\.py", example.before))
    source = (ROOT / path).read_text(encoding="utf-8")
    for block in re.split(r"\n(?=@|def )", example.code):
        if DEFINES_TESTS.search(block):
            assert block.strip() in source, f"{example.name}: this test is not in {path} as shown:\n{block}"


def test_runnable_examples_pass_on_the_demo_model(pytester: pytest.Pytester) -> None:
    files = {}
    for number, example in enumerate(RUNNABLE):
        stem = re.sub(r"\W+", "_", example.name.rsplit(".", 1)[0]).strip("_").lower()
        files[f"test_doc_{number:02d}_{stem}"] = example.code
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess(
        f"--clip-samples={SAMPLES}",
        "--clip-offline",
        f"--clip-data-root={pytester.path / 'no-data'}",
        "--clip-device=cpu",
        f"--clip-cache-dir={pytester.path / 'cache'}",
        "--clip-ig-samples=0",
        "-p",
        "no:cacheprovider",
        "-rA",
    )
    outcomes = result.parseoutcomes()
    assert set(outcomes) <= {"passed", "xfailed"}, result.stdout.str()
    where = {name: example.name for name, example in zip(files, RUNNABLE, strict=True)}
    for name in files:  # every example ran at least one test
        assert any(line.startswith((f"PASSED {name}.py::", f"XFAIL {name}.py::")) for line in result.stdout.lines), f"{where[name]} ran no test"


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def test_readme_failure_message_is_what_its_command_prints(tmp_path: Path) -> None:
    """The README shows a command and the failure it prints; run the command and compare, line for line."""
    import shlex
    import subprocess
    import sys

    blocks = fenced_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    (command,) = [block.strip() for block in blocks if block.startswith("pytest ") and "--runxfail" in block]
    shown = next(block for block in blocks if block.startswith("E   ")).splitlines()
    args = shlex.split(command)[1:]
    # Attributions and the cache do not change the message; leaving them out keeps the run short and the home folder clean.
    extra = ["--clip-ig-samples=0", f"--clip-cache-dir={tmp_path / 'cache'}", "-p", "no:cacheprovider"]
    done = subprocess.run([sys.executable, "-m", "pytest", *args, *extra], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    printed = [line for line in done.stdout.splitlines() if line.startswith("E   ")]
    assert printed == shown, done.stdout
