"""Progress lines for slow evaluations, written so that pytest's own progress line stays whole.

pytest writes a file's location once and then one letter per test on the same line. A progress
line in between starts on a fresh line (the terminal reporter's ``write_line``); before the next
letter, the location is written again through the terminal reporter, as pytest does when a new
file starts, so no letter is left alone on a line. In verbose mode pytest rewrites the test's
location line by itself.
"""

from __future__ import annotations

from typing import Any

import pytest

PROGRESS_AFTER_SECONDS = 3.0  # quick evaluations print nothing; slower ones a line every 3 s


class ProgressLines:
    """The evaluator's progress callback on the controller; also a plugin that restores pytest's line."""

    def __init__(self, reporter: Any, capture: Any) -> None:
        self.reporter = reporter
        self.capture = capture
        self.last_shown = 0.0
        self.wrote = False  # a progress line broke pytest's current line since the last letter

    def __call__(self, label: str, done: int, total: int, elapsed: float) -> None:
        after = PROGRESS_AFTER_SECONDS
        if elapsed < after or (done < total and elapsed - self.last_shown < after):
            return
        self.last_shown = elapsed
        with self.capture.global_and_fixture_disabled():
            self.reporter.write_line(f"clipcompress: {label}: {done}/{total} images, {done / elapsed:.1f} images/s")
        self.wrote = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Before pytest writes this test's letter: the file's location again, if a progress line came in between."""
        if not self.wrote:
            return
        self.wrote = False
        if self.reporter.verbosity <= 0 and self.reporter.showfspath:
            self.reporter.write_fspath_result(report.nodeid, "")


def progress_printer(config: pytest.Config) -> ProgressLines | None:
    """Progress lines for evaluations that take a while, shown even under output capture; registered as a
    plugin so that it restores pytest's line. None without a terminal (e.g. ``-p no:terminal``)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return None
    printer = ProgressLines(reporter, capture)
    config.pluginmanager.register(printer, "clipcompress-progress")
    return printer
