"""One pytest-clipcompress session per pytest run: its stash keys, the controller/worker facts and
the run's state (evaluator, collected records, failures, notes).

Hooks in :mod:`.plugin` and the classes in :mod:`.integrations` delegate here in a line or two.
The work of a test (evaluations, and Integrated Gradients after its body ran) happens where pytest
times the test; its report then only carries records (:mod:`.records`), and only the controller
(or a run without xdist) renders them and writes files.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import pytest

from .errors import ClipCompressError
from .progress import ProgressLines
from .records import (
    AttributionSet,
    BreakingPointRecord,
    FailureRecord,
    ReportData,
    evaluation_record,
    report_data,
    unique_results,
)
from .results import ResultsCollector, check_output_path, report_outcome
from .settings import Settings

if TYPE_CHECKING:
    from .evaluation import EvalResult, Evaluator

DEMO_NOTE = "bundled demo model; pass --clip-model for a real one"
ATTRIBUTION_SECTION = "Captured stdout clipcompress attributions"  # "stdout": JUnit's system-out picks it up
#: The test outcomes whose flipped images ``--clip-ig-on`` explains.
IG_OUTCOMES = {"never": (), "failed": ("failed",), "xfailed": ("failed", "xfailed"), "all": ("failed", "xfailed", "passed")}

SESSION = pytest.StashKey["ClipSession"]()
ITEM_RESULTS = pytest.StashKey["list[EvalResult]"]()
ITEM_BREAKING_POINTS = pytest.StashKey["list[BreakingPointRecord]"]()
ITEM_ATTRIBUTIONS = pytest.StashKey["tuple[AttributionSet | None, str | None]"]()


class ClipSession:
    """The run's state, in ``config.stash``; get it with :meth:`of`."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.collector = ResultsCollector()
        self.failures: list[FailureRecord] = []
        self.skips: list[dict[str, str]] = []
        self.notes: list[str] = []  # faults of optional steps, shown in the terminal summary
        self.running: pytest.Item | None = None
        self.ig_seconds = 0.0  # spent in this process, against --clip-ig-budget
        self._evaluator: Evaluator | None = None
        self._results_error: str | None = None
        self._baseline_saved = False
        self._teardown_sections: dict[str, list[tuple[str, str]]] = {}
        if self.is_controller:
            from .metadata import run_metadata

            self.collector.run = run_metadata(settings.device, settings.precision, config.rootpath)

    @staticmethod
    def of(config: pytest.Config) -> ClipSession:
        return config.stash[SESSION]

    # --- where this process runs ------------------------------------------------------------

    @property
    def is_controller(self) -> bool:
        """True on the xdist controller and in a run without xdist: the process that writes files."""
        return not hasattr(self.config, "workerinput")

    @property
    def worker_index(self) -> int | None:
        worker = getattr(self.config, "workerinput", {}).get("workerid")
        return int(worker[2:]) if worker else None

    @property
    def cpu_threads(self) -> int | None:
        """Under xdist, each worker's share of the CPU cores; None leaves torch's default."""
        workers = getattr(self.config, "workerinput", {}).get("workercount")
        return max(1, (os.cpu_count() or 1) // int(workers)) if workers else None

    @property
    def demo_note(self) -> str | None:
        return DEMO_NOTE if self.settings.uses_demo_model else None

    @property
    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            from .evaluation import Evaluator

            self._evaluator = Evaluator(self.settings, self.worker_index, self._progress_printer(), self.cpu_threads)
        return self._evaluator

    def _progress_printer(self) -> Callable[[str, int, int, float], None] | None:
        """Progress lines for evaluations that take a while, shown even under output capture."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None or not self.is_controller:
            return None
        printer = ProgressLines(reporter, capture)
        self.config.pluginmanager.register(printer, "clipcompress-progress")  # it restores pytest's line
        return printer

    # --- start --------------------------------------------------------------------------------

    def header(self) -> list[str]:
        settings = self.settings
        model = self.demo_note or ", ".join(settings.models) + f" (pretrained: {settings.pretrained or 'default'})"
        return [f"clipcompress: {model}; device {settings.device}; samples {settings.samples or 'all'}; seed {settings.seed}"]

    def start(self) -> None:
        """Check models, device and output paths before any test runs: a typo is one usage error."""
        settings = self.settings
        try:
            # Only when the user named models or configs: a plain run must not pay open_clip's import.
            # An explicit --clip-pretrained is checked for the demo model too (a missing file, an unknown tag).
            if settings.model_configs or not settings.uses_demo_model or settings.pretrained is not None:
                from .models import register_model_configs

                register_model_configs(settings.model_config_paths)
                for name in settings.models:
                    settings.model_spec(name)
            if settings.device not in ("auto", "cpu"):
                from .models import resolve_device

                resolve_device(settings.device, None)
            if self.is_controller:
                for flag, path, kind in self._outputs():
                    check_output_path(flag, path, kind)
        except ClipCompressError as error:
            raise pytest.UsageError(str(error)) from None
        if settings.cache_clear and self.is_controller and not settings.no_cache:
            from .cache import LogitsCache

            LogitsCache(settings.cache_dir).clear()

    def _outputs(self) -> list[tuple[str, Any, Literal["file", "dir", "tree"]]]:
        settings = self.settings
        outputs: list[tuple[str, Any, Literal["file", "dir", "tree"]]] = [
            ("--clip-results", settings.results, "file"),
            ("--clip-baseline-save", settings.baseline_save, "file"),
            ("--clip-report", settings.report, "dir"),
        ]
        outputs.append(("--clip-summary", settings.summary, "file"))
        if not settings.no_cache:
            outputs.append(("--clip-cache-dir", settings.cache_dir, "tree"))
        return [(flag, path, kind) for flag, path, kind in outputs if path]

    # --- a test's work ------------------------------------------------------------------------

    @staticmethod
    def results_of(item: pytest.Item) -> list[EvalResult]:
        return item.stash.setdefault(ITEM_RESULTS, [])

    @staticmethod
    def breaking_points_of(item: pytest.Item) -> list[BreakingPointRecord]:
        return item.stash.setdefault(ITEM_BREAKING_POINTS, [])

    def after_call(self, item: pytest.Item, error: BaseException | None) -> None:
        """After the test body: explain its flipped images if ``--clip-ig-on`` asks for this outcome.

        Runs inside ``pytest_runtest_call``, so the time counts in ``--durations`` and JUnit. Any
        fault becomes a one-line note; the test keeps its own outcome.
        """
        results = item.stash.get(ITEM_RESULTS, [])
        settings = self.settings
        if not results or settings.ig_samples <= 0 or settings.ig_on == "never":
            return
        started = time.perf_counter()
        attributions: AttributionSet | None = None
        note = None
        try:
            if expected_outcome(item, error) not in IG_OUTCOMES[settings.ig_on]:
                return
            from .explain import explain

            deadline = None if settings.ig_budget is None else started + settings.ig_budget - self.ig_seconds
            attributions, chosen = explain(results, self.evaluator, deadline)
            if len(attributions["items"]) < chosen:
                note = (
                    f"clipcompress: attributions stopped after {len(attributions['items'])} of {chosen} images: "
                    f"--clip-ig-budget {settings.ig_budget:g} s is spent"
                )
        except Exception as fault:  # an optional step: never a changed outcome or an INTERNALERROR
            lines = str(fault).strip().splitlines()
            note = f"clipcompress: attributions skipped: {type(fault).__name__}" + (f": {lines[0]}" if lines else "")
        finally:
            self.ig_seconds += time.perf_counter() - started
        item.stash[ITEM_ATTRIBUTIONS] = (attributions, note)

    def attach(self, item: pytest.Item, report: pytest.TestReport) -> None:
        """Give the call report the test's records (data only), and JUnit its numbers as properties."""
        results = item.stash.get(ITEM_RESULTS, [])
        if report.when != "call" or not results:
            return
        attributions, note = item.stash.get(ITEM_ATTRIBUTIONS, (None, None))
        data = report_data(results, item.stash.get(ITEM_BREAKING_POINTS, []), attributions, note)
        # Hypothesis examples are probes, kept apart from the grid in the terminal summary.
        data["search"] = bool(getattr(getattr(item, "obj", None), "is_hypothesis_test", False))
        from .metadata import model_facts

        # Facts of the models these results came from (loaded already, in this process) for the run block.
        data["models"] = [model_facts(self.evaluator.model(name)) for name in sorted({result.model_id for result in results})]
        report.clipcompress = data  # type: ignore[attr-defined]
        from .junit import check_properties, metric_properties

        # On the item, like record_property: JUnit XML reads them from the teardown report.
        for result in unique_results(results):
            item.user_properties += metric_properties(result)
        item.user_properties += check_properties(results)

    # --- the controller -----------------------------------------------------------------------

    def collect(self, report: pytest.TestReport) -> None:
        """Controller: gather a report's records, render its attribution section, keep the results file fresh."""
        if not self.is_controller:
            return
        if report.when == "teardown":
            # JUnit's system-out reads the teardown report's sections.
            report.sections.extend(self._teardown_sections.pop(report.nodeid, []))
            return
        data: ReportData | None = getattr(report, "clipcompress", None)
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skips.append({"test": report.nodeid, "reason": reason.removeprefix("Skipped: ")})
        if not data:
            return
        outcome = report_outcome(report)
        self.collector.add(report.nodeid, data, outcome)
        attributions, note = data.get("attributions"), data.get("note")
        if outcome in ("failed", "xfailed"):  # the reports list every failure, explained or not
            self.failures.append({"test": report.nodeid, "outcome": outcome, "attributions": attributions})
        text = attribution_section(attributions, note)
        if text:
            report.sections.append((ATTRIBUTION_SECTION, text))
            junit_text = text
            if self.settings.report is not None and attributions and attributions["images"]:
                # GitLab shows these figures on the test's page of its JUnit view.
                from .junit import attachment_lines
                from .render.folder import attribution_figures

                junit_text += "\n" + "\n".join(attachment_lines(self.settings.report, attribution_figures(report.nodeid, len(attributions["images"]))))
            self._teardown_sections[report.nodeid] = [(ATTRIBUTION_SECTION, junit_text)]
        if note:
            self.notes.append(f"{report.nodeid}: {note.removeprefix('clipcompress: ')}")
        self.write_results()  # after every test, so a killed run keeps what it evaluated

    def interrupted(self) -> None:
        """Ctrl-C: keep the evaluations the interrupted test had already finished."""
        item = self.running
        results = [] if item is None else item.stash.get(ITEM_RESULTS, [])
        if item is None or not self.is_controller or not results:
            return
        evaluations = [evaluation_record(result) for result in unique_results(results)]
        self.collector.add(item.nodeid, {"evaluations": evaluations, "checks": [], "breaking_points": []})

    def write_results(self) -> bool:
        """Write the results file; a fault is remembered for the summary, never raised."""
        if not self.settings.results:
            return True
        try:
            self.collector.write(self.settings.results)
        except (OSError, ValueError, TypeError) as error:  # a full or read-only disk, a value JSON cannot hold
            self._results_error = f"cannot write the results file {self.settings.results}: {error}; the previous file is unchanged"
            return False
        self._results_error = None
        return True

    def finish(self, session: pytest.Session) -> None:
        """Controller: write the results file and the report folder, fresh even when nothing was evaluated."""
        if not self.is_controller or self.config.getoption("collectonly"):
            return
        settings = self.settings
        self.write_markdown_summary()
        if not self.write_results() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # the one output that may fail the run
        if settings.baseline_save and self.collector:
            try:
                self.collector.write(settings.baseline_save)  # a baseline is a results file
                self._baseline_saved = True
            except (OSError, ValueError, TypeError) as error:
                self._results_error = f"cannot write the baseline {settings.baseline_save}: {error}; the previous file is unchanged"
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if settings.report:
            records = self.collector.sorted_records()
            pages: list[str] = []
            try:  # before index.html, which links the pages written
                from .render.comparison import write_comparison_pages

                pages = write_comparison_pages(settings.report, records, settings.models, settings.baseline)
            except Exception as error:  # optional pages
                self.notes.append(f"comparison pages not written: {type(error).__name__}: {error}")
            try:
                from .render import write_report_dir

                write_report_dir(
                    settings.report,
                    records,
                    self.collector.checks,
                    self.failures,
                    demo_note=self.demo_note,
                    breaking_points=self.collector.breaking_points,
                    skips=self.skips,
                    comparison_pages=pages,
                )
            except Exception as error:  # an optional output: a note, not a traceback
                self.notes.append(f"report not written to {settings.report}: {type(error).__name__}: {error}")

    def write_markdown_summary(self) -> None:
        """``--clip-summary`` always (a run that evaluated nothing says so); ``$GITHUB_STEP_SUMMARY`` only when it evaluated something."""
        from .render.markdown import GITHUB_STEP_SUMMARY, summary_markdown, write_summary

        environ = {GITHUB_STEP_SUMMARY: os.environ.get(GITHUB_STEP_SUMMARY, "")} if self.collector else {}
        if self.settings.summary is None and not environ.get(GITHUB_STEP_SUMMARY):
            return
        try:
            from .metadata import with_models

            collector = self.collector
            run = collector.run and with_models(collector.run, collector.models)
            checks = [{**check, "outcome": check.get("outcome") or "failed"} for check in collector.checks]
            text = summary_markdown(collector.sorted_records(), checks, collector.breaking_points, run=run, demo_note=self.demo_note)
            self.notes += write_summary(text, self.settings.summary, environ)
        except Exception as error:  # an optional output: a note, not a traceback
            self.notes.append(f"summary not written: {type(error).__name__}: {error}")

    def html_environment(self) -> dict[str, str]:
        """Rows for pytest-html's Environment table: the run block (versions, commit, models)."""
        from .metadata import environment_rows, with_models

        run = self.collector.run
        return {} if run is None else environment_rows(with_models(run, self.collector.models))

    def terminal_summary(self, reporter: Any) -> None:
        settings = self.settings
        if not (self.collector or self.notes or self._results_error or settings.results or settings.report):
            return
        from .render import breaking_point_lines, terminal_table

        reporter.section("clipcompress: zero-shot accuracy under compression")
        if self.demo_note:
            reporter.write_line(f"model: {self.demo_note}")
        if not self.collector:
            reporter.write_line("no evaluations")
        grid, probes = self.collector.grid_and_probes()
        for line in terminal_table(grid):
            reporter.write_line(line)
        bisected = {(p["model"], p["pretrained"], p["dataset"], probe["setting"]) for p in self.collector.breaking_points for probe in p["frontier"]}
        sampled = [r for r in probes if (r["model"], r["pretrained"], r["dataset"], r["compression_id"]) not in bisected]
        if sampled:  # hypothesis examples; bisection probes are listed under their breaking point
            reporter.write_line("search probes (hypothesis examples, apart from the grid above):")
            for line in terminal_table(sampled):
                reporter.write_line(line)
        for line in breaking_point_lines(self.collector.breaking_points):
            reporter.write_line(line)
        if self.collector:
            from .gate import summary_lines

            for line in summary_lines(self.collector.sorted_records(), settings.models, settings.baseline):
                reporter.write_line(line)
        explained = [f["attributions"] for f in self.failures if f["attributions"] and f["attributions"]["items"]]
        images = sum(len(attributions["items"]) for attributions in explained)
        if images:
            tests = len(explained)
            seconds = sum(attributions["seconds"] for attributions in explained)
            reporter.write_line(f"attributions: {images} flipped images of {tests} failing tests explained with Integrated Gradients in {seconds:.1f} s")
        for note in self.notes:
            reporter.write_line(f"note: {note}", yellow=True)
        if self._results_error:
            reporter.write_line(f"ERROR: {self._results_error}", red=True, bold=True)
        elif settings.results:
            reporter.write_line(f"results: {settings.results}")
        if self._baseline_saved:
            reporter.write_line(f"baseline saved: {settings.baseline_save}")
        if settings.report:
            reporter.write_line(f"report: {settings.report / 'index.html'}")
        if settings.summary:
            reporter.write_line(f"summary: {settings.summary}")

    # --- pytest-html ----------------------------------------------------------------------------

    def html_extras(self, report: pytest.TestReport) -> list[Any]:
        """Controller: the attribution table and pictures for a test's pytest-html row."""
        attributions = (getattr(report, "clipcompress", None) or {}).get("attributions")
        if not attributions or not attributions["items"] or not self.is_controller:
            return []
        from pytest_html import extras

        from .render.html import attribution_extra_html
        from .render.terminal import aggregate_text

        added = [extras.html(attribution_extra_html(attributions["items"], aggregate_text(attributions["summary"])))]
        for item, image in zip(attributions["items"], attributions["images"], strict=True):
            added.append(extras.png(image, name=f"{item['compression_id']} image {item['index']}: {item['true_name']} -> {item['pred_compressed_name']}"))
        return added

    def html_summary(self) -> tuple[list[str], list[str]]:
        """Controller: pytest-html's summary as (what failed and why, charts and tables); a fault becomes a note."""
        if not self.collector:
            return [], []
        try:
            from .render import accuracy_charts, summary_html

            records = self.collector.sorted_records()
            charts = accuracy_charts(records, self.collector.checks, self.collector.breaking_points)
            context: dict[str, Any] = {"demo_note": self.demo_note, "failures": self.failures, "skips": self.skips}
            triage = summary_html(records, self.collector.checks, charts, part="triage", **context)
            return [triage], [summary_html(records, self.collector.checks, charts, part="details", **context)]
        except Exception as error:  # a chart fault leaves the summary out, with a note
            self.notes.append(f"pytest-html summary left out: {type(error).__name__}: {error}")
            return [], []


def attribution_section(attributions: AttributionSet | None, note: str | None) -> str:
    """The text of a test's attribution report section: the IG numbers and/or the note."""
    from .render.terminal import attribution_text

    parts = [attribution_text(attributions)] if attributions and attributions["items"] else []
    return "\n".join([*parts, *([note] if note else [])])


def expected_outcome(item: pytest.Item, error: BaseException | None) -> str:
    """What the test's outcome will be after its body raised ``error`` (None: it returned)."""
    if error is None:
        return "passed"
    if isinstance(error, (KeyboardInterrupt, pytest.exit.Exception)):
        return "interrupted"
    if isinstance(error, pytest.skip.Exception):
        return "skipped"
    if isinstance(error, pytest.xfail.Exception):  # pytest.xfail() inside the test
        return "xfailed"
    return "xfailed" if _expected_failure(item, error) else "failed"


def _expected_failure(item: pytest.Item, error: BaseException) -> bool:
    """Whether an xfail marker (also one added with ``request.applymarker``) covers ``error``.

    Follows pytest's documented rules with its public marker API: the first marker whose
    condition holds (or that has none) decides, and its ``raises`` must match.
    """
    if item.config.getoption("runxfail", False):
        return False
    for mark in item.iter_markers(name="xfail"):
        conditions = mark.args or ((mark.kwargs["condition"],) if "condition" in mark.kwargs else ())
        if conditions and not any(_holds(item, condition) for condition in conditions):
            continue
        raises = mark.kwargs.get("raises")
        return raises is None or isinstance(error, raises)
    return False


def _holds(item: pytest.Item, condition: Any) -> bool:
    if not isinstance(condition, str):
        return bool(condition)
    # A string condition sees what pytest documents: os, sys, platform, config, the module's globals.
    namespace: dict[str, Any] = {"os": os, "sys": sys, "platform": platform, "config": item.config}
    for extra in item.ihook.pytest_markeval_namespace(config=item.config):
        namespace.update(extra)
    namespace.update(getattr(getattr(item, "obj", None), "__globals__", {}))
    try:
        return bool(eval(condition, namespace))
    except Exception:  # pytest reports a broken condition itself
        return False
