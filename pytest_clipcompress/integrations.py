"""Plugin classes registered by ``pytest_configure``: the results file and terminal summary (always),
pytest-html (only when it is active) and pytest-xdist (only when it is installed).

Only the controller (or a run without xdist) writes files; workers send JSON-able data with their
test reports.
"""

from __future__ import annotations

from typing import Any

import pytest

from .results import ResultsCollector


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


class ResultsPlugin:
    """Collects evaluation records from test reports; writes the results file and the terminal table."""

    def __init__(self, config: pytest.Config) -> None:
        from .plugin import SETTINGS

        self.config = config
        self.settings = config.stash[SETTINGS]
        self.collector = ResultsCollector()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "clipcompress", None)
        if not data or not is_controller(self.config):
            return
        self.collector.add(report.nodeid, data)
        if self.settings.results:
            # Written after every test, so an interrupted run keeps what it evaluated.
            self.collector.write(self.settings.results)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.collector:
            return
        from .reporting import breaking_point_lines, terminal_table

        terminalreporter.section("clipcompress: zero-shot accuracy under compression")
        for line in terminal_table(self.collector.sorted_records()) + breaking_point_lines(self.collector.breaking_points):
            terminalreporter.write_line(line)
        if self.settings.results:
            terminalreporter.write_line(f"results: {self.settings.results}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.collector and self.settings.results and is_controller(self.config):
            self.collector.write(self.settings.results)


class HtmlReportPlugin:
    """pytest-html integration: attribution extras on failing rows and a summary section."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config


class HypothesisPlugin:
    """Hypothesis integration for tests that take ``clip_eval`` or ``clip_breaking_point``.

    Those fixtures only memoize pure evaluations, so sharing them between examples is safe: the
    function-scoped-fixture health check is a false alarm there and is suppressed for these tests
    alone. Their example database lives in pytest's cache, so past failures replay first.
    """

    FIXTURES = ("clip_eval", "clip_breaking_point")

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from hypothesis import HealthCheck, settings
        from hypothesis.database import DirectoryBasedExampleDatabase

        cache = getattr(self.config, "cache", None)
        for item in items:
            function = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
            if not getattr(function, "is_hypothesis_test", False) or not set(self.FIXTURES) & set(getattr(item, "fixturenames", ())):
                continue
            current = getattr(function, "_hypothesis_internal_use_settings", settings.default)
            changes: dict[str, Any] = {"suppress_health_check": [*current.suppress_health_check, HealthCheck.function_scoped_fixture]}
            if cache is not None:
                changes["database"] = DirectoryBasedExampleDatabase(str(cache.mkdir("clipcompress-hypothesis")))
            function._hypothesis_internal_use_settings = settings(current, **changes)


class XdistPlugin:
    """pytest-xdist integration."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
