"""pytest hooks, options and fixtures. The work itself lives in the modules beside this one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .errors import ClipCompressError, ConfigError, DatasetMissingError
from .progress import ProgressLines
from .settings import OPTIONS, Option, Settings, build_settings

if TYPE_CHECKING:
    from .breaking_point import BreakingPoint
    from .compression import Compression
    from .datasets import ImageDataset
    from .evaluation import EvalResult, Evaluator
    from .models import LoadedModel

SETTINGS = pytest.StashKey[Settings]()
EVALUATOR = pytest.StashKey["Evaluator"]()
ITEM_RESULTS = pytest.StashKey["list[EvalResult]"]()
ITEM_BREAKING_POINTS = pytest.StashKey["list[dict[str, Any]]"]()

CLIP_FIXTURES = ("clip_eval", "clip_dataset", "compression", "clip_model")


def markers() -> tuple[str, ...]:
    """The markers' help lines, from the codec and dataset registries (conftest registrations included)."""
    from .compression import marker_help as compression_help
    from .datasets import marker_help as dataset_help

    return (compression_help(), dataset_help())


# --- options and configuration ------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clipcompress", "CLIP robustness to image compression (pytest-clipcompress)")
    for option in OPTIONS:
        if option.kind == "flag":
            group.addoption(option.flag, action="store_true", default=None, dest=option.dest, help=option.help)
            parser.addini(option.ini, option.help, type="bool", default=False)
        elif option.kind == "list":
            group.addoption(option.flag, action="append", default=None, dest=option.dest, metavar=option.metavar, help=option.help)
            parser.addini(option.ini, option.help, type="args", default=[])
        else:
            group.addoption(option.flag, default=None, dest=option.dest, metavar=option.metavar, help=option.help)
            parser.addini(option.ini, option.help, type="string", default="")


def _lookup(config: pytest.Config) -> Callable[[Option], Any]:
    """Command line first, then the ini file."""

    def lookup(option: Option) -> Any:
        value = config.getoption(option.dest)
        return value if value is not None else config.getini(option.ini)

    return lookup


def pytest_configure(config: pytest.Config) -> None:
    for marker in markers():
        config.addinivalue_line("markers", marker)
    try:
        config.stash[SETTINGS] = build_settings(_lookup(config))
    except ClipCompressError as error:
        raise pytest.UsageError(str(error)) from None
    from .integrations import HtmlReportPlugin, HypothesisPlugin, ResultsPlugin

    results = ResultsPlugin(config)
    config.pluginmanager.register(results, "clipcompress-results")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlReportPlugin(config, results), "clipcompress-html")
    if config.pluginmanager.hasplugin("hypothesispytest"):
        config.pluginmanager.register(HypothesisPlugin(config), "clipcompress-hypothesis")


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[SETTINGS]
    if settings.uses_demo_model:
        from .integrations import DEMO_NOTE

        model = DEMO_NOTE
    else:
        model = ", ".join(settings.models) + f" (pretrained: {settings.pretrained or 'default'})"
    return [f"clipcompress: {model}; device {settings.device}; samples {settings.samples or 'all'}; seed {settings.seed}"]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Check models, configs and device before any test runs, so a typo is one clear usage error."""
    config = session.config
    settings = config.stash[SETTINGS]
    try:
        # Only when the user named models or configs: a plain run must not pay open_clip's import.
        if settings.model_configs or not settings.uses_demo_model:
            from .models import register_model_configs

            register_model_configs(settings.model_config_paths)
            for name in settings.models:
                settings.model_spec(name)
        if settings.device != "auto" and settings.device != "cpu":
            from .models import resolve_device

            resolve_device(settings.device, None)
    except ClipCompressError as error:
        raise pytest.UsageError(str(error)) from None
    if settings.cache_clear and _is_controller(config) and not settings.no_cache:
        from .cache import LogitsCache

        LogitsCache(settings.cache_dir).clear()


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def _worker_index(config: pytest.Config) -> int | None:
    worker = getattr(config, "workerinput", {}).get("workerid")
    return int(worker[2:]) if worker else None


def _cpu_threads(config: pytest.Config) -> int | None:
    """Under xdist, each worker's share of the CPU cores; None leaves torch's default."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    return max(1, (os.cpu_count() or 1) // int(workers)) if workers else None


def _evaluator(config: pytest.Config) -> Evaluator:
    if EVALUATOR not in config.stash:
        from .evaluation import Evaluator

        config.stash[EVALUATOR] = Evaluator(config.stash[SETTINGS], _worker_index(config), _progress_printer(config), _cpu_threads(config))
    return config.stash[EVALUATOR]


def _progress_printer(config: pytest.Config) -> Callable[[str, int, int, float], None] | None:
    """Progress lines for evaluations that take a while, shown even under output capture (controller only)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not _is_controller(config):
        return None
    printer = ProgressLines(reporter, capture)
    config.pluginmanager.register(printer, "clipcompress-progress")
    return printer


# --- parametrization ----------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not any(name in metafunc.fixturenames for name in CLIP_FIXTURES):
        return
    from .datasets import dataset_id

    settings = metafunc.config.stash[SETTINGS]
    try:
        datasets = _marked_datasets(metafunc)
        compressions = _marked_compressions(metafunc)
    except ClipCompressError as error:
        raise pytest.fail.Exception(f"{metafunc.definition.nodeid}: {error}", pytrace=False) from None
    if len(settings.models) > 1 and "clip_model" in metafunc.fixturenames:
        metafunc.parametrize("clip_model", settings.models, indirect=True, ids=list(settings.models), scope="session")
    if datasets and compressions:
        cases = [(d, c) for d in datasets for c in compressions]
        ids = [f"{dataset_id(d)}-{c.id}" for d, c in cases]
        metafunc.parametrize(("clip_dataset", "compression"), cases, indirect=True, ids=ids)
    elif datasets:
        metafunc.parametrize("clip_dataset", datasets, indirect=True, ids=[dataset_id(d) for d in datasets])
    elif compressions:
        metafunc.parametrize("compression", compressions, indirect=True, ids=[c.id for c in compressions])


def _in_written_order(metafunc: pytest.Metafunc, name: str) -> list[pytest.Mark]:
    # Stacked decorators are stored innermost first; reverse to read them top to bottom.
    return list(reversed(list(metafunc.definition.iter_markers(name))))


def _marked_datasets(metafunc: pytest.Metafunc) -> list[str]:
    from .datasets import validate_dataset_name

    names: list[str] = []
    for mark in _in_written_order(metafunc, "clip_dataset"):
        if mark.kwargs or not mark.args:
            raise ConfigError("clip_dataset takes dataset names, e.g. @pytest.mark.clip_dataset('cifar10', 'stl10')")
        for name in mark.args:
            canonical = validate_dataset_name(name)
            if canonical not in names:
                names.append(canonical)
    return names


def _marked_compressions(metafunc: pytest.Metafunc) -> list[Compression]:
    from .compression import expand

    cases: list[Compression] = []
    for mark in _in_written_order(metafunc, "compression"):
        if len(mark.args) != 1:
            raise ConfigError("compression takes one codec name and its parameters, e.g. @pytest.mark.compression('jpeg', quality=[75, 50])")
        for case in expand(mark.args[0], mark.kwargs):
            if case not in cases:
                cases.append(case)
    return cases


# --- fixtures -----------------------------------------------------------------------------------


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the plugin's errors into a skip (data not there) or a short failure, never a traceback."""
    __tracebackhide__ = True
    try:
        yield
    except DatasetMissingError as error:
        raise pytest.skip.Exception(str(error)) from None
    except ClipCompressError as error:
        raise pytest.fail.Exception(str(error), pytrace=False) from None


def _model_id(request: pytest.FixtureRequest) -> str:
    """This case's ``--clip-model`` id (role, else name): its parameter, else the only model."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "clip_model" in callspec.params:
        return str(callspec.params["clip_model"])
    return request.config.stash[SETTINGS].models[0]


@pytest.fixture(scope="session")
def clip_evaluator(pytestconfig: pytest.Config) -> Evaluator:
    """The run-wide evaluator: models, datasets and results, each loaded or computed once."""
    return _evaluator(pytestconfig)


@pytest.fixture(scope="session")
def clip_model(request: pytest.FixtureRequest, clip_evaluator: Evaluator) -> LoadedModel:
    """The CLIP model under test (one per ``--clip-model`` value), with its preprocessing and tokenizer."""
    name = getattr(request, "param", None) or request.config.stash[SETTINGS].models[0]
    with user_errors():
        return clip_evaluator.model(name)


@pytest.fixture
def clip_dataset(request: pytest.FixtureRequest, clip_evaluator: Evaluator) -> ImageDataset | None:
    """The dataset of this test case (from ``@pytest.mark.clip_dataset``), or None when unmarked."""
    spec = getattr(request, "param", None)
    if spec is None:
        return None
    with user_errors():
        return clip_evaluator.dataset(spec)


@pytest.fixture
def compression(request: pytest.FixtureRequest) -> Compression | None:
    """The compression of this test case (from ``@pytest.mark.compression``), or None when unmarked."""
    return getattr(request, "param", None)


@pytest.fixture
def clip_eval(
    request: pytest.FixtureRequest, clip_evaluator: Evaluator, clip_model: LoadedModel, clip_dataset: ImageDataset | None, compression: Compression | None
) -> Callable[..., EvalResult]:
    """``clip_eval(dataset=None, compression=None, model=None)`` evaluates zero-shot accuracy; defaults come
    from the markers, and ``model`` (a ``--clip-model`` role or name) defaults to this case's model."""
    from .compression import Compression

    results = request.node.stash.setdefault(ITEM_RESULTS, [])
    marked_dataset, marked_compression = clip_dataset, compression
    case_model = _model_id(request)

    def evaluate(dataset: str | ImageDataset | None = None, compression: Compression | str | None = None, model: str | None = None) -> EvalResult:
        __tracebackhide__ = True
        with user_errors():
            chosen_dataset = dataset if dataset is not None else marked_dataset
            if chosen_dataset is None:
                raise ConfigError("clip_eval() needs a dataset: add @pytest.mark.clip_dataset('cifar10') or call clip_eval(dataset='cifar10')")
            chosen = compression if compression is not None else marked_compression
            if chosen is None or isinstance(chosen, str):
                chosen = Compression(chosen or "none")
            if not isinstance(chosen, Compression):
                raise ConfigError(f"clip_eval(compression=...) takes a Compression or a codec name, not {type(chosen).__name__}")
            result = clip_evaluator.evaluate(model or case_model, chosen_dataset, chosen)
        results.append(result)
        return result

    return evaluate


@pytest.fixture
def clip_breaking_point(request: pytest.FixtureRequest, clip_evaluator: Evaluator, clip_model: LoadedModel) -> Callable[..., BreakingPoint]:
    """``clip_breaking_point(dataset, codec, param, floor, metric="accuracy")``: the mildest setting that breaks the floor.

    Bisects over the parameter (each probe is an ordinary, cached evaluation) and reports the frontier
    in the results file, the terminal summary and the HTML summary.
    """
    from .breaking_point import find_breaking_point
    from .datasets import validate_dataset_name

    results = request.node.stash.setdefault(ITEM_RESULTS, [])
    found = request.node.stash.setdefault(ITEM_BREAKING_POINTS, [])
    model_id = _model_id(request)

    def search(dataset: str | ImageDataset, codec: str = "jpeg", param: str = "quality", *, floor: float, metric: str = "accuracy", **options: Any) -> BreakingPoint:
        __tracebackhide__ = True

        def evaluate(compression: Compression) -> EvalResult:
            result = clip_evaluator.evaluate(model_id, dataset, compression)
            results.append(result)
            return result

        with user_errors():
            point = find_breaking_point(evaluate, codec, param, floor=floor, metric=metric, **options)
        # The canonical name, as the evaluations carry it, so the chart finds its breaking point.
        name = validate_dataset_name(dataset) if isinstance(dataset, str) else dataset.name
        found.append({"model": clip_model.spec.name, "pretrained": clip_model.spec.pretrained_label, "dataset": name, **point.to_dict()})
        return point

    return search


def dataset_fixture(name: str) -> Any:
    """A session fixture called ``name`` holding that registered dataset (skips with instructions when
    it is missing under --clip-offline). In a conftest: ``toy = dataset_fixture("toy")``."""

    def fixture(clip_evaluator: Evaluator) -> ImageDataset:
        with user_errors():
            return clip_evaluator.dataset(name)

    fixture.__doc__ = f"The {name} test split (skips with instructions when it is missing under --clip-offline)."
    return pytest.fixture(scope="session", name=name)(fixture)


cifar10 = dataset_fixture("cifar10")
stl10 = dataset_fixture("stl10")


# --- reporting ----------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    report = yield
    results = item.stash.get(ITEM_RESULTS, [])
    if report.when == "call" and results:
        from .reporting import report_payload

        failed = report.failed or (report.skipped and hasattr(report, "wasxfail"))
        report.clipcompress = report_payload(results, item.stash.get(ITEM_BREAKING_POINTS, []), _evaluator(item.config), failed)
        # Hypothesis examples are probes, kept apart from the grid in the terminal summary.
        report.clipcompress["search"] = bool(getattr(getattr(item, "obj", None), "is_hypothesis_test", False))
        attributions = report.clipcompress.get("attributions")
        if attributions and attributions["items"]:
            from .explain import attribution_text

            # A "Captured stdout" section shows under the failure; the item's copy reaches JUnit's system-out.
            text = attribution_text(attributions)
            report.sections.append(("Captured stdout clipcompress attributions", text))
            report_dir = item.config.stash[SETTINGS].report
            if report_dir is not None:  # GitLab shows these figures on the test's page in its JUnit view
                from .junit import attachment_lines
                from .report import attribution_figure, attribution_stem

                stem = attribution_stem(item.nodeid)
                text += "\n" + "\n".join(attachment_lines(report_dir, [attribution_figure(stem, k) for k in range(len(attributions["images"]))]))
            item.add_report_section("call", "stdout clipcompress attributions", text)
        from .metrics import METRICS

        for result in {result.key: result for result in results}.values():  # hypothesis repeats evaluations
            prefix = f"clip[{result.dataset}-{result.compression.id}]"
            # On the item, like record_property: JUnit XML reads them from the teardown report.
            properties = [(f"{prefix}.{metric.junit_property}", f"{metric.value(result):.6f}") for metric in METRICS.values()]
            item.user_properties += [*properties, (f"{prefix}.n", str(result.n))]
        from .junit import check_properties

        item.user_properties += check_properties(results)
    return report
