"""Plugin classes registered by ``pytest_configure`` only when their pytest plugin is active:
pytest-html (its hooks delegate to the :class:`~.controller.Controller`) and hypothesis.
"""

from __future__ import annotations

from typing import Any

import pytest

from .controller import Controller


class HtmlReportPlugin:
    """pytest-html integration: attribution extras on explained rows, a summary section, and every
    row's test id escaped (pytest-html 4.2 inserts it into its results table as HTML).

    Extras are made on the controller from the records the report carries, before pytest-html
    reads ``report.extras``, so serial and xdist runs produce the same report.
    """

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        added = self.controller.html_extras(report)
        if added:
            # pytest-html reads this attribute, which pytest's TestReport does not declare
            report.extras = [*getattr(report, "extras", []), *added]  # type: ignore[attr-defined]

    @pytest.hookimpl(tryfirst=True)  # before pytest-html renders its page, Environment table included
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        try:
            from pytest_metadata.plugin import metadata_key
        except ImportError:
            return
        if metadata_key in session.config.stash:
            session.config.stash[metadata_key].update(self.controller.html_environment())

    @pytest.hookimpl(tryfirst=True)  # on pytest-html's own cells, before other plugins change the row
    def pytest_html_results_table_row(self, report: pytest.TestReport | pytest.CollectReport, cells: list[Any]) -> None:
        from ..render.html import escape_test_id_cell

        # The id pytest-html shows: the node id, with the phase for errors at setup, teardown or collection.
        escape_test_id_cell(cells, report.nodeid if report.when == "call" else f"{report.nodeid}::{report.when}")

    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session) -> None:
        # What failed comes before pytest-html's own counts, the charts and tables after them.
        triage, details = self.controller.html_summary()
        prefix.extend(triage)
        postfix.extend(details)


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
            if function is None or not getattr(function, "is_hypothesis_test", False) or not set(self.FIXTURES) & set(getattr(item, "fixturenames", ())):
                continue
            # Hypothesis has no public way to change an already-decorated test's settings: @given keeps
            # them in this attribute only, and applying @settings again raises when the test has its own.
            current = getattr(function, "_hypothesis_internal_use_settings", None) or settings()
            changes: dict[str, Any] = {"suppress_health_check": [*current.suppress_health_check, HealthCheck.function_scoped_fixture]}
            if cache is not None:
                changes["database"] = DirectoryBasedExampleDatabase(str(cache.mkdir("clipcompress-hypothesis")))
            function._hypothesis_internal_use_settings = settings(current, **changes)
