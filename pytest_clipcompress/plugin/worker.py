"""A test's work, in whichever process runs it (the xdist worker, or the one process of a plain run).

Its evaluations happen in the test body (the fixtures); after the body, in ``pytest_runtest_call``
so that the time counts for the test, :class:`TestWork` explains its flipped images with
Integrated Gradients; then it hands the call report the test's records, data only
(``report.clipcompress``), and JUnit its numbers as properties. Nothing is rendered or written here.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from ..config.options import IG_OUTCOMES
from ..results.schema import AttributionSet, BreakingPoint, ReportData
from .junit import check_properties, metric_properties
from .markers import CLIP_FIXTURES
from .session import ClipSession

if TYPE_CHECKING:
    from ..engine.result import EvalResult

ITEM_RESULTS = pytest.StashKey["list[EvalResult]"]()
ITEM_BREAKING_POINTS = pytest.StashKey["list[BreakingPoint]"]()
ITEM_ATTRIBUTIONS = pytest.StashKey["tuple[AttributionSet | None, str | None]"]()


def results_of(item: pytest.Item) -> list[EvalResult]:
    """The results of the test's ``clip_eval`` calls (and its searches' probes), in order."""
    return item.stash.setdefault(ITEM_RESULTS, [])


def breaking_points_of(item: pytest.Item) -> list[BreakingPoint]:
    return item.stash.setdefault(ITEM_BREAKING_POINTS, [])


class TestWork:
    """The hooks around each test, bound to the run's session; registered in every process."""

    __test__ = False  # not a test class, whatever pytest's collection rules say about its name

    def __init__(self, session: ClipSession) -> None:
        self.session = session
        self.running: pytest.Item | None = None  # the test in progress (the controller keeps its results on Ctrl-C)
        self.ig_seconds = 0.0  # spent in this process, against --clip-ig-budget

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        self.running = item
        outcome = yield  # an interrupt raises here and leaves `running` set for pytest_keyboard_interrupt
        self.running = None
        return outcome

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        # Attributions are test work: done here, after the body, their time counts for the test.
        try:
            result = yield
        except BaseException as error:
            self.explain(item, error)
            raise
        self.explain(item, None)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.skipped and not hasattr(report, "wasxfail") and is_clip_case(item):
            self.skipped(report)
        self.attach(item, report)
        return report

    def skipped(self, report: pytest.TestReport) -> None:
        """A clip case skipped: mark it for the summaries; under ``--clip-strict`` it fails instead."""
        report.clipcompress_case = True  # type: ignore[attr-defined]  # read by the controller, also from xdist workers
        if not self.session.settings.strict:
            return
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"clipcompress --clip-strict: this clip case could not run, which fails a strict run: {reason.removeprefix('Skipped: ')}\n"
            "Provide what it needs (the data, the baseline), or leave --clip-strict (clip_strict) off to let such cases skip."
        )

    def explain(self, item: pytest.Item, error: BaseException | None) -> None:
        """After the test body: explain its flipped images if ``--clip-ig-on`` asks for this outcome.

        Any fault becomes a one-line note; the test keeps its own outcome.
        """
        results = item.stash.get(ITEM_RESULTS, [])
        options = self.session.settings.ig
        if not results or options.samples <= 0 or options.on == "never":
            return
        started = time.perf_counter()
        attributions: AttributionSet | None = None
        note = None
        try:
            if expected_outcome(item, error) not in IG_OUTCOMES[options.on]:
                return
            from ..ig.explain import explain

            deadline = None if options.budget is None else started + options.budget - self.ig_seconds
            attributions, chosen = explain(results, self.session.evaluator, options, deadline)
            if len(attributions["items"]) < chosen:
                note = (
                    f"clipcompress: attributions stopped after {len(attributions['items'])} of {chosen} images: --clip-ig-budget {options.budget:g} s is spent"
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
        from ..engine.result import unique_results

        unique = unique_results(results)
        attributions, note = item.stash.get(ITEM_ATTRIBUTIONS, (None, None))
        evaluator = self.session.evaluator
        data: ReportData = {
            "evaluations": [result.to_record() for result in unique],
            "checks": [check for result in results for check in result.checks],
            "breaking_points": [point.to_dict() for point in item.stash.get(ITEM_BREAKING_POINTS, [])],
            # Hypothesis examples are probes, kept apart from the grid.
            "search": bool(getattr(getattr(item, "obj", None), "is_hypothesis_test", False)),
            # Facts of the models these results came from (loaded already, in this process) for the run block.
            "models": [evaluator.model(model_id).facts() for model_id in sorted({result.model_id for result in results})],
        }
        if attributions is not None:
            data["attributions"] = attributions
        if note:
            data["note"] = note
        report.clipcompress = data  # type: ignore[attr-defined]
        # On the item, like record_property: JUnit XML reads them from the teardown report.
        for result in unique:
            item.user_properties += metric_properties(result)
        item.user_properties += check_properties(results)


def is_clip_case(item: pytest.Item) -> bool:
    """A test that uses the plugin's fixtures (a case of a dataset, a compression or a model)."""
    names = set(getattr(item, "fixturenames", ()))
    return bool(names & {*CLIP_FIXTURES, "clip_breaking_point", "clip_evaluator", "cifar10", "stl10"})


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
