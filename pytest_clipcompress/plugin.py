"""pytest hooks, options, markers and fixtures. Hooks delegate to the run's
:class:`~.session.ClipSession`; the work itself lives in the modules beside this one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .errors import ClipCompressError, ConfigError, DatasetMissingError
from .records import breaking_point_record
from .session import SESSION, ClipSession
from .settings import OPTIONS, Option, build_settings
from .values import safe_id

if TYPE_CHECKING:
    from .breaking_point import BreakingPoint
    from .compression import Compression
    from .datasets import ImageDataset
    from .evaluation import EvalResult, Evaluator
    from .models import LoadedModel

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
        settings = build_settings(_lookup(config))
    except ClipCompressError as error:
        raise pytest.UsageError(str(error)) from None
    session = config.stash[SESSION] = ClipSession(config, settings)
    config.pluginmanager.register(SessionHooks(session), "clipcompress-session")
    if config.pluginmanager.hasplugin("html"):
        from .integrations import HtmlReportPlugin

        config.pluginmanager.register(HtmlReportPlugin(session), "clipcompress-html")
    if config.pluginmanager.hasplugin("hypothesispytest"):
        from .integrations import HypothesisPlugin

        config.pluginmanager.register(HypothesisPlugin(config), "clipcompress-hypothesis")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return ClipSession.of(config).header()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Check models, configs, device and output paths before any test runs (one clear usage error)."""
    ClipSession.of(session.config).start()


# --- parametrization ----------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not any(name in metafunc.fixturenames for name in CLIP_FIXTURES):
        return
    from .datasets import dataset_id

    settings = ClipSession.of(metafunc.config).settings
    try:
        datasets = _marked_datasets(metafunc)
        compressions = _marked_compressions(metafunc)
    except ClipCompressError as error:
        raise pytest.fail.Exception(f"{metafunc.definition.nodeid}: {error}", pytrace=False) from None
    if len(settings.models) > 1 and "clip_model" in metafunc.fixturenames:
        metafunc.parametrize("clip_model", settings.models, indirect=True, ids=[safe_id(m) for m in settings.models], scope="session")
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
    return ClipSession.of(request.config).settings.models[0]


@pytest.fixture(scope="session")
def clip_evaluator(pytestconfig: pytest.Config) -> Evaluator:
    """The run-wide evaluator: models, datasets and results, each loaded or computed once."""
    return ClipSession.of(pytestconfig).evaluator


@pytest.fixture(scope="session")
def clip_model(request: pytest.FixtureRequest, clip_evaluator: Evaluator) -> LoadedModel:
    """The CLIP model under test (one per ``--clip-model`` value), with its preprocessing and tokenizer."""
    name = getattr(request, "param", None) or ClipSession.of(request.config).settings.models[0]
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

    results = ClipSession.results_of(request.node)
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

    results = ClipSession.results_of(request.node)
    found = ClipSession.breaking_points_of(request.node)
    model_id = _model_id(request)

    def search(
        dataset: str | ImageDataset, codec: str = "jpeg", param: str = "quality", *, floor: float, metric: str = "accuracy", **options: Any
    ) -> BreakingPoint:
        __tracebackhide__ = True

        def evaluate(compression: Compression) -> EvalResult:
            result = clip_evaluator.evaluate(model_id, dataset, compression)
            results.append(result)
            return result

        with user_errors():
            point = find_breaking_point(evaluate, codec, param, floor=floor, metric=metric, **options)
        # The canonical name, as the evaluations carry it, so the chart finds its breaking point.
        name = validate_dataset_name(dataset) if isinstance(dataset, str) else dataset.name
        found.append(breaking_point_record(clip_model.spec.name, clip_model.spec.pretrained_label, name, point))
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


# --- the test's work and its report ------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    # Attributions are test work: done here, after the body, their time counts for the test.
    try:
        result = yield
    except BaseException as error:
        ClipSession.of(item.config).after_call(item, error)
        raise
    ClipSession.of(item.config).after_call(item, None)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    ClipSession.of(item.config).attach(item, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[Any]:
    session = ClipSession.of(item.config)
    session.running = item
    outcome = yield  # an interrupt raises here and leaves `running` set for pytest_keyboard_interrupt
    session.running = None
    return outcome


class SessionHooks:
    """The hooks pytest calls without a config, bound to the run's session."""

    def __init__(self, session: ClipSession) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)  # before pytest-html and JUnit read the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.session.collect(report)

    def pytest_keyboard_interrupt(self) -> None:
        self.session.interrupted()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    ClipSession.of(config).terminal_summary(terminalreporter)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    ClipSession.of(session.config).finish(session)
