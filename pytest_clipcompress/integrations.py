"""Plugin classes registered by ``pytest_configure``: the results file and terminal summary (always),
pytest-html and hypothesis (each only when that plugin is active).

Only the controller (or a run without xdist) writes files; workers send JSON-able data with their
test reports.
"""

from __future__ import annotations

from typing import Any

import pytest

from .metadata import with_models
from .results import ResultsCollector

DEMO_NOTE = "bundled demo model; pass --clip-model for a real one"


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


class ResultsPlugin:
    """Collects evaluation records from test reports; writes the results file and the terminal table."""

    def __init__(self, config: pytest.Config) -> None:
        from .plugin import SETTINGS

        self.config = config
        self.settings = config.stash[SETTINGS]
        self.collector = ResultsCollector()
        if is_controller(config):
            from .metadata import run_metadata

            self.collector.run = run_metadata(self.settings.device, self.settings.precision, config.rootpath)
        self.failures: list[dict[str, Any]] = []
        self.running: pytest.Item | None = None
        self.outcomes: dict[str, str] = {}  # test outcome by node id, so the summary tells xfail from failure
        self.notes: list[str] = []  # optional outputs that could not be written, shown in the terminal summary

    @property
    def demo_note(self) -> str | None:
        return DEMO_NOTE if self.settings.uses_demo_model else None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "clipcompress", None)
        if not data or not is_controller(self.config):
            return
        self.collector.add(report.nodeid, data)
        expected = hasattr(report, "wasxfail")
        self.outcomes[report.nodeid] = ("xfailed" if report.skipped else "xpassed") if expected else report.outcome
        if data.get("attributions"):
            outcome = "xfailed" if hasattr(report, "wasxfail") else "failed"
            self.failures.append({"test": report.nodeid, "outcome": outcome, "attributions": data["attributions"]})
        if self.settings.results:
            # Written after every test, so an interrupted run keeps what it evaluated.
            self.collector.write(self.settings.results)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Any:
        self.running = item
        outcome = yield  # an interrupt raises here and leaves `running` set for pytest_keyboard_interrupt
        self.running = None
        return outcome

    def pytest_keyboard_interrupt(self) -> None:
        """Ctrl-C: keep the evaluations the interrupted test had already finished."""
        from .plugin import ITEM_RESULTS

        item = self.running
        if item is None or not is_controller(self.config) or not item.stash.get(ITEM_RESULTS, []):
            return
        self.collector.add(item.nodeid, {"evaluations": [result.to_record() for result in item.stash[ITEM_RESULTS]]})
        if self.settings.results:
            self.collector.write(self.settings.results)

    def write_markdown_summary(self) -> None:
        """``--clip-summary`` always (a run that evaluated nothing says so); ``$GITHUB_STEP_SUMMARY`` only when it evaluated something."""
        import os

        from .render.markdown import (
            GITHUB_STEP_SUMMARY,
            summary_markdown,
            write_summary,
        )

        environ = {GITHUB_STEP_SUMMARY: os.environ.get(GITHUB_STEP_SUMMARY, "")} if self.collector else {}
        if self.settings.summary is None and not environ.get(GITHUB_STEP_SUMMARY):
            return
        collector = self.collector
        run = collector.run and with_models(collector.run, collector.models)
        checks = [{"outcome": self.outcomes.get(check["test"], "failed"), **check} for check in collector.checks]
        text = summary_markdown(collector.sorted_records(), checks, collector.breaking_points, run=run, demo_note=self.demo_note)
        self.notes += write_summary(text, self.settings.summary, environ)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for note in self.notes:
            terminalreporter.write_line(f"clipcompress: {note}", yellow=True)
        if not self.collector:
            return
        from .reporting import breaking_point_lines, terminal_table

        terminalreporter.section("clipcompress: zero-shot accuracy under compression")
        if self.demo_note:
            terminalreporter.write_line(f"model: {self.demo_note}")
        grid, probes = self.collector.grid_and_probes()
        for line in terminal_table(grid):
            terminalreporter.write_line(line)
        bisected = {(p["model"], p["pretrained"], p["dataset"], probe["setting"]) for p in self.collector.breaking_points for probe in p["frontier"]}
        sampled = [r for r in probes if (r["model"], r["pretrained"], r["dataset"], r["compression_id"]) not in bisected]
        if sampled:  # hypothesis examples; bisection probes are listed under their breaking point
            terminalreporter.write_line("search probes (hypothesis examples, apart from the grid above):")
            for line in terminal_table(sampled):
                terminalreporter.write_line(line)
        for line in breaking_point_lines(self.collector.breaking_points):
            terminalreporter.write_line(line)
        from .gate import summary_lines

        for line in summary_lines(self.collector.sorted_records(), self.settings.models, self.settings.baseline):
            terminalreporter.write_line(line)
        images = sum(len(f["attributions"]["items"]) for f in self.failures)
        if images:
            tests = sum(1 for f in self.failures if f["attributions"]["items"])
            seconds = sum(f["attributions"]["seconds"] for f in self.failures)
            terminalreporter.write_line(f"attributions: {images} flipped images of {tests} failing tests explained with Integrated Gradients in {seconds:.1f} s")
        if self.settings.results:
            terminalreporter.write_line(f"results: {self.settings.results}")
        if self.settings.baseline_save:
            terminalreporter.write_line(f"baseline saved: {self.settings.baseline_save}")
        if self.settings.report:
            terminalreporter.write_line(f"report: {self.settings.report / 'index.html'}")
        if self.settings.summary:
            terminalreporter.write_line(f"summary: {self.settings.summary}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not is_controller(self.config):
            return
        self.write_markdown_summary()
        if not self.collector:
            return
        if self.settings.results:
            self.collector.write(self.settings.results)
        if self.settings.baseline_save:
            self.collector.write(self.settings.baseline_save)  # a baseline is a results file
        if self.settings.report:
            from .report import write_report_dir

            records = self.collector.sorted_records()
            write_report_dir(
                self.settings.report, records, self.collector.checks, self.failures, demo_note=self.demo_note, breaking_points=self.collector.breaking_points
            )
            from .compare_report import write_comparison_pages
            from .errors import ClipCompressError

            try:  # optional pages: a fault here must not take the run down
                write_comparison_pages(self.settings.report, records, self.settings.models, self.settings.baseline)
            except (OSError, ClipCompressError) as error:
                reporter = self.config.pluginmanager.get_plugin("terminalreporter")
                if reporter is not None:
                    reporter.write_line(f"clipcompress: comparison pages not written: {error}")


class HtmlReportPlugin:
    """pytest-html integration: attribution extras on failing rows and a summary section.

    Extras are added on the controller from the JSON payload the report carries, before
    pytest-html reads ``report.extras``, so serial and xdist runs produce the same report.
    """

    def __init__(self, config: pytest.Config, results: ResultsPlugin) -> None:
        self.config = config
        self.results = results

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        attributions = (getattr(report, "clipcompress", None) or {}).get("attributions")
        if not attributions or not attributions["items"] or not is_controller(self.config):
            return
        from pytest_html import extras

        from html import escape

        from .explain import aggregate_text

        summary = f"<p>{escape(aggregate_text(attributions['summary']))}</p>"
        added = [extras.html(f'<div class="clipcompress-attributions">{attributions["table_html"]}{summary}</div>')]
        for item, image in zip(attributions["items"], attributions["images"]):
            name = f"{item['compression_id']} image {item['index']}: {item['true_name']} -> {item['pred_compressed_name']}"
            added.append(extras.png(image, name=name))
        report.extras = [*getattr(report, "extras", []), *added]

    @pytest.hookimpl(tryfirst=True)  # before pytest-html renders its page, Environment table included
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        run = self.results.collector.run
        if run is None:
            return
        try:
            from pytest_metadata.plugin import metadata_key
        except ImportError:
            return
        from .metadata import environment_rows

        if metadata_key in self.config.stash:
            self.config.stash[metadata_key].update(environment_rows(with_models(run, self.results.collector.models)))

    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session) -> None:
        collector = self.results.collector
        if not collector:
            return
        from .report import accuracy_charts, summary_html

        records = collector.sorted_records()
        charts = accuracy_charts(records, collector.checks, collector.breaking_points)
        postfix.append(summary_html(records, collector.checks, charts, demo_note=self.results.demo_note))


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
