"""The controller: the one process that gathers every test's records (the xdist controller, or the one
process of a plain run) and writes and shows every output.

:class:`Controller` reads each report's records (``report.clipcompress``), keeps the results file
fresh after every test (a killed run keeps what it evaluated), and at the end writes the results
file, the baseline, the report folder and the Markdown summary, and prints the terminal summary.
Every output is rendered late from the records (:mod:`..render`); a fault in an optional output is
a note, never a traceback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from ..results.collector import ResultsCollector
from ..results.schema import CheckRecord, ComparisonRow, EvaluationRecord, FailureRecord, ReportData, SkipRecord, case_key
from .session import ClipSession
from .worker import ITEM_RESULTS, TestWork

if TYPE_CHECKING:
    from pathlib import Path

ATTRIBUTION_SECTION = "Captured stdout clipcompress attributions"  # "stdout": JUnit's system-out picks it up


def report_outcome(report: pytest.TestReport) -> str:
    """``passed``, ``failed``, ``skipped``, ``xfailed`` or ``xpassed``: what the test's call report says, xfail included."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed" if report.passed else "failed"
    return "failed" if report.failed else "skipped" if report.skipped else "passed"


class Controller:
    """The hooks of the process that writes files, bound to the run's session."""

    def __init__(self, session: ClipSession, work: TestWork) -> None:
        self.session = session
        self.work = work
        self.collector = ResultsCollector()
        self.failures: list[FailureRecord] = []
        self.skips: list[SkipRecord] = []
        self.notes: list[str] = []  # faults of optional steps, shown in the terminal summary
        self._results_error: str | None = None
        self._baseline_saved = False
        self._teardown_sections: dict[str, list[tuple[str, str]]] = {}
        from ..config.settings import number_settings
        from ..results.metadata import run_metadata

        settings = session.settings
        self.collector.run = run_metadata(settings.evaluation.device, settings.evaluation.precision, session.config.rootpath, number_settings(settings))

    # --- each test ----------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)  # before pytest-html and JUnit read the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Gather a report's records, give it its attribution section, keep the results file fresh."""
        if report.when == "teardown":
            # JUnit's system-out reads the teardown report's sections.
            report.sections.extend(self._teardown_sections.pop(report.nodeid, []))
            return
        data: ReportData | None = getattr(report, "clipcompress", None)
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skips.append({"test": report.nodeid, "reason": reason.removeprefix("Skipped: "), "clip": bool(getattr(report, "clipcompress_case", False))})
        if not data:
            return
        outcome = report_outcome(report)
        self.collector.add(report.nodeid, data, outcome)
        attributions, note = data.get("attributions"), data.get("note")
        if outcome in ("failed", "xfailed"):  # the reports list every failure, explained or not
            self.failures.append({"test": report.nodeid, "outcome": outcome, "attributions": attributions})
        text = _attribution_section(data)
        if text:
            report.sections.append((ATTRIBUTION_SECTION, text))
            junit_text = text
            report_dir = self.session.settings.outputs.report
            if report_dir is not None and attributions and attributions["images"]:
                # GitLab shows these figures on the test's page of its JUnit view.
                from ..render.folder import attribution_figures
                from .junit import attachment_lines

                junit_text += "\n" + "\n".join(attachment_lines(report_dir, attribution_figures(report.nodeid, len(attributions["images"]))))
            self._teardown_sections[report.nodeid] = [(ATTRIBUTION_SECTION, junit_text)]
        if note:
            self.notes.append(f"{report.nodeid}: {note.removeprefix('clipcompress: ')}")
        self.write_results()  # after every test, so a killed run keeps what it evaluated

    def pytest_keyboard_interrupt(self) -> None:
        """Ctrl-C: keep the evaluations the interrupted test had already finished."""
        item = self.work.running
        results = [] if item is None else item.stash.get(ITEM_RESULTS, [])
        if item is None or not results:
            return
        from ..engine.result import unique_results

        self.collector.add(item.nodeid, {"evaluations": [result.to_record() for result in unique_results(results)], "checks": [], "breaking_points": []})

    # --- the end ----------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the results file, the baseline, the summary and the report folder, fresh even when nothing was evaluated."""
        if self.session.config.getoption("collectonly"):
            return
        outputs = self.session.settings.outputs
        self.write_markdown_summary()
        if not self.write_results() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # the one output that may fail the run
        if outputs.baseline_save and self.collector:
            try:
                self.collector.write(outputs.baseline_save)  # a baseline is a results file
                self._baseline_saved = True
            except (OSError, ValueError, TypeError) as error:
                self._results_error = f"cannot write the baseline {outputs.baseline_save}: {error}; the previous file is unchanged"
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if outputs.report:
            self.write_report(outputs.report)

    def write_results(self) -> bool:
        """Write the results file; a fault is remembered for the summary, never raised."""
        path = self.session.settings.outputs.results
        if not path:
            return True
        try:
            self.collector.write(path)
        except (OSError, ValueError, TypeError) as error:  # a full or read-only disk, a value JSON cannot hold
            self._results_error = f"cannot write the results file {path}: {error}; the previous file is unchanged"
            return False
        self._results_error = None
        return True

    def comparisons(self) -> tuple[list[ComparisonRow], list[ComparisonRow]]:
        """The run's models side by side, and the run against ``--clip-baseline`` (read at the start)."""
        from ..compare import DEFAULT_MARGIN, compare_files, roles_side_by_side

        records = self.collector.sorted_records()
        baseline = self.session.baseline
        margins = {
            kind: {case_key(c): c.get("max_regression", DEFAULT_MARGIN) for c in self.collector.checks if c.get("kind") == kind}
            for kind in ("baseline", "model")
        }
        against = compare_files(baseline.evaluations, records, margins=margins["baseline"]).rows if baseline is not None else []
        return roles_side_by_side(records, self.session.settings.models.ids, margins=margins["model"]), against

    def baseline_curves(self) -> list[EvaluationRecord]:
        """The baseline's evaluations of this run's cases, under the role ``baseline`` (``<id> baseline`` with
        several models), for the charts to overlay on the run's own curves."""
        baseline = self.session.baseline
        if baseline is None:
            return []
        from ..results.file import find_record

        ids = self.session.settings.models.ids
        curves: list[EvaluationRecord] = []
        for record in self.collector.sorted_records():
            found = find_record(baseline.evaluations, case_key(record), (record.get("data") or {}).get("fingerprint"))
            if found is not None and not record.get("probe"):
                curves.append({**found, "dataset": record["dataset"], "role": "baseline" if len(ids) == 1 else f"{case_key(record).role} baseline"})
        return curves

    def write_report(self, directory: Path) -> None:
        pages: dict[str, str] = {}
        try:
            from ..render.comparison import comparison_pages

            baseline = self.session.baseline
            pages = comparison_pages(*self.comparisons(), baseline.path.name if baseline is not None else None)
        except Exception as error:  # optional pages
            self.notes.append(f"comparison pages not written: {type(error).__name__}: {error}")
        try:
            from ..render import write_report_dir

            write_report_dir(
                directory,
                self.collector.sorted_records(),
                self.collector.checks,
                self.failures,
                demo_note=self.session.demo_note,
                breaking_points=self.collector.breaking_points,
                skips=self.skips,
                comparison_pages=pages,
                references=self.baseline_curves(),
            )
        except Exception as error:  # an optional output: a note, not a traceback
            self.notes.append(f"report not written to {directory}: {type(error).__name__}: {error}")

    def write_markdown_summary(self) -> None:
        """``--clip-summary`` always (a run that evaluated nothing says so); ``$GITHUB_STEP_SUMMARY`` only when it evaluated something."""
        from ..render.markdown import GITHUB_STEP_SUMMARY, summary_markdown, write_summary

        path = self.session.settings.outputs.summary
        environ = {GITHUB_STEP_SUMMARY: os.environ.get(GITHUB_STEP_SUMMARY, "")} if self.collector else {}
        if path is None and not environ.get(GITHUB_STEP_SUMMARY):
            return
        try:
            from ..results.metadata import with_models

            collector = self.collector
            run = collector.run and with_models(collector.run, collector.models)
            checks: list[CheckRecord] = [{**check, "outcome": check.get("outcome") or "failed"} for check in collector.checks]
            text = summary_markdown(collector.sorted_records(), checks, collector.breaking_points, run=run, demo_note=self.session.demo_note, skips=self.skips)
            self.notes += write_summary(text, path, environ)
        except Exception as error:  # an optional output: a note, not a traceback
            self.notes.append(f"summary not written: {type(error).__name__}: {error}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        outputs = self.session.settings.outputs
        if not (self.collector or self.notes or self._results_error or outputs.results or outputs.report):
            return
        from ..render import breaking_point_lines, terminal_table
        from ..render.terminal import comparison_table

        write = terminalreporter.write_line
        terminalreporter.section("clipcompress: zero-shot accuracy under compression")
        if self.session.demo_note:
            write(f"model: {self.session.demo_note}")
        if not self.collector:
            write("no evaluations")
        records = self.collector.sorted_records()
        for line in terminal_table([r for r in records if not r.get("probe")]):
            write(line)
        bisected = {(p.role, p.dataset, probe["setting"]) for p in self.collector.breaking_points for probe in p.frontier}
        sampled = [r for r in records if r.get("probe") and (r["role"], r["dataset"], r["compression_id"]) not in bisected]
        if sampled:  # hypothesis examples; bisection probes are listed under their breaking point
            write("search probes (hypothesis examples, apart from the grid above):")
            for line in terminal_table(sampled):
                write(line)
        for line in breaking_point_lines(self.collector.breaking_points):
            write(line)
        if self.collector:
            side_by_side, against = self.comparisons()
            if side_by_side:
                write("models side by side (each against the first model, on the same images):")
                for line in comparison_table(side_by_side, "first", "other"):
                    write("  " + line)
            if against:
                baseline = self.session.baseline
                write(f"against the baseline {outputs.baseline} ({baseline.checkpoints() if baseline else ''}), on the same images:")
                for line in comparison_table(against, "baseline", "this run"):
                    write("  " + line)
        self._closing_lines(terminalreporter)

    def _closing_lines(self, terminalreporter: Any) -> None:
        """Attribution totals, notes, and where each output went (or why it did not)."""
        write = terminalreporter.write_line
        outputs = self.session.settings.outputs
        explained = [f["attributions"] for f in self.failures if f["attributions"] and f["attributions"]["items"]]
        images = sum(len(attributions["items"]) for attributions in explained)
        if images:
            seconds = sum(attributions["seconds"] for attributions in explained)
            write(f"attributions: {images} flipped images of {len(explained)} failing tests explained with Integrated Gradients in {seconds:.1f} s")
        for note in self.notes:
            write(f"note: {note}", yellow=True)
        if self._results_error:
            write(f"ERROR: {self._results_error}", red=True, bold=True)
        elif outputs.results:
            write(f"results: {outputs.results}")
        if self._baseline_saved:
            write(f"baseline saved: {outputs.baseline_save}")
        if outputs.report:
            write(f"report: {outputs.report / 'index.html'}")
        if outputs.summary:
            write(f"summary: {outputs.summary}")

    # --- pytest-html ----------------------------------------------------------------------------

    def html_extras(self, report: pytest.TestReport) -> list[Any]:
        """The attribution table and pictures for a test's pytest-html row."""
        attributions = (getattr(report, "clipcompress", None) or {}).get("attributions")
        if not attributions or not attributions["items"]:
            return []
        from pytest_html import extras

        from ..render.html import attribution_extra_html
        from ..render.terminal import aggregate_text

        added = [extras.html(attribution_extra_html(attributions["items"], aggregate_text(attributions["summary"])))]
        for item, image in zip(attributions["items"], attributions["images"], strict=True):
            added.append(extras.png(image, name=f"{item['compression_id']} image {item['index']}: {item['true_name']} -> {item['pred_compressed_name']}"))
        return added

    def html_summary(self) -> tuple[list[str], list[str]]:
        """pytest-html's summary as (what failed and why, charts and tables); a fault becomes a note."""
        if not self.collector:
            return [], []
        try:
            from ..render import accuracy_charts, summary_html

            records = self.collector.sorted_records()
            charts = accuracy_charts(records, self.collector.checks, self.collector.breaking_points, self.baseline_curves())
            context: dict[str, Any] = {"demo_note": self.session.demo_note, "failures": self.failures, "skips": self.skips}
            triage = summary_html(records, self.collector.checks, charts, part="triage", **context)
            return [triage], [summary_html(records, self.collector.checks, charts, part="details", **context)]
        except Exception as error:  # a chart fault leaves the summary out, with a note
            self.notes.append(f"pytest-html summary left out: {type(error).__name__}: {error}")
            return [], []

    def html_environment(self) -> dict[str, str]:
        """Rows for pytest-html's Environment table: the run block (versions, commit, models)."""
        from ..results.metadata import environment_rows, with_models

        run = self.collector.run
        return {} if run is None else environment_rows(with_models(run, self.collector.models))


def _attribution_section(data: ReportData) -> str:
    """The text of a test's attribution report section: the IG numbers and/or the note."""
    from ..render.terminal import attribution_text

    attributions, note = data.get("attributions"), data.get("note")
    parts = [attribution_text(attributions)] if attributions and attributions["items"] else []
    return "\n".join([*parts, *([note] if note else [])])
