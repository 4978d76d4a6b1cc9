"""pytest-clipcompress's pytest plugin (the ``pytest11`` entry point): options, markers, fixtures and the
hooks that hand the run to its session objects.

``pytest_configure`` builds the run's :class:`~.session.ClipSession` and registers the objects
whose methods are the remaining hooks: :class:`~.worker.TestWork` in every process (a test's
attributions and records) and :class:`~.controller.Controller` in the process that writes files
(gathering records, every output). The fixtures here are thin: they ask the session's evaluator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from ..config.options import OPTIONS, Option
from ..config.settings import build_settings
from ..errors import ClipCompressError, ConfigError, DatasetMissingError
from .markers import marker_lines, parametrize
from .session import SESSION, ClipSession
from .worker import TestWork, breaking_points_of, results_of

if TYPE_CHECKING:
    from ..codecs.compression import Compression
    from ..data.base import ImageDataset
    from ..engine.evaluator import Evaluator
    from ..engine.result import EvalResult
    from ..models.load import LoadedModel
    from ..results.schema import BreakingPoint


# --- options, configuration, the session ------------------------------------------------------


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
    for line in marker_lines():
        config.addinivalue_line("markers", line)
    try:
        settings = build_settings(_lookup(config))
    except ClipCompressError as error:
        raise pytest.UsageError(str(error)) from None
    session = config.stash[SESSION] = ClipSession(config, settings)
    for message in settings.deprecations:
        config.issue_config_time_warning(pytest.PytestDeprecationWarning(message), stacklevel=2)
    work = TestWork(session)
    config.pluginmanager.register(work, "clipcompress-work")
    if session.is_controller:
        from .controller import Controller

        controller = Controller(session, work)
        config.pluginmanager.register(controller, "clipcompress-controller")
        if config.pluginmanager.hasplugin("html"):
            from .integrations import HtmlReportPlugin

            config.pluginmanager.register(HtmlReportPlugin(controller), "clipcompress-html")
    if config.pluginmanager.hasplugin("hypothesispytest"):
        from .integrations import HypothesisPlugin

        config.pluginmanager.register(HypothesisPlugin(config), "clipcompress-hypothesis")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return ClipSession.of(config).header()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Check models, configs, device and output paths before any test runs (one clear usage error)."""
    ClipSession.of(session.config).start()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every output is written (also after Ctrl-C): the codec worker processes end."""
    ClipSession.of(session.config).close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize(metafunc, ClipSession.of(metafunc.config).settings)


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
    return ClipSession.of(request.config).settings.models.ids[0]


@pytest.fixture(scope="session")
def clip_evaluator(pytestconfig: pytest.Config) -> Evaluator:
    """The run-wide evaluator: models, datasets and results, each loaded or computed once."""
    return ClipSession.of(pytestconfig).evaluator


@pytest.fixture(scope="session")
def clip_model(request: pytest.FixtureRequest, clip_evaluator: Evaluator) -> LoadedModel:
    """The CLIP model under test (one per ``--clip-model`` value), with its preprocessing and tokenizer."""
    name = getattr(request, "param", None) or ClipSession.of(request.config).settings.models.ids[0]
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
    from ..codecs.compression import Compression

    session = ClipSession.of(request.config)
    results = results_of(request.node)
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
            # What the run checks results against: the configured floors and the baseline (read once).
            result = replace(clip_evaluator.evaluate(model or case_model, chosen_dataset, chosen), floors=session.settings.floors, baseline=session.baseline)
        results.append(result)
        return result

    return evaluate


@pytest.fixture
def clip_breaking_point(request: pytest.FixtureRequest, clip_evaluator: Evaluator, clip_model: LoadedModel) -> Callable[..., BreakingPoint]:
    """``clip_breaking_point(dataset, codec, param, floor, metric="accuracy")``: the mildest setting that breaks the floor.

    Bisects over the parameter (each probe is an ordinary, cached evaluation) and reports the frontier
    in the results file, the terminal summary and the HTML summary.
    """
    from ..data.registry import validate_dataset_name
    from ..engine.breaking_point import find_breaking_point

    results = results_of(request.node)
    found = breaking_points_of(request.node)
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
        point = replace(point, model=clip_model.spec.name, pretrained=clip_model.spec.pretrained_label, dataset=name, role=model_id)
        found.append(point)
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
