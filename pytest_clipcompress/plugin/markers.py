"""The markers: their help lines (from the codec and dataset registries), their validation, and the
test cases they make (one per dataset x compression, and per ``--clip-model`` when there are several).

Stacked markers read top to bottom; case ids are readable and safe (``cifar10-jpeg-q75``).
"""

from __future__ import annotations

import difflib

import pytest

from ..codecs.compression import Compression
from ..config.settings import Settings
from ..errors import ConfigError
from ..inputs import safe_id

#: The fixtures that make a test a clip case.
CLIP_FIXTURES = ("clip_eval", "clip_dataset", "compression", "clip_model")
#: The plugin's markers, which a near miss (``compresion``) is told to be.
MARKERS = ("compression", "clip_dataset")


def marker_lines() -> tuple[str, ...]:
    """The markers' help lines, from the codec and dataset registries (conftest registrations included)."""
    from ..codecs.registry import marker_help as compression_help
    from ..data.registry import marker_help as dataset_help

    return (compression_help(), dataset_help())


def parametrize(metafunc: pytest.Metafunc, settings: Settings) -> None:
    """Make the cases of a test that uses the clip fixtures; a bad marker is a clear collection error."""
    if not any(name in metafunc.fixturenames for name in CLIP_FIXTURES):
        return
    from ..data.registry import dataset_id

    try:
        _refuse_near_misses(metafunc)
        datasets = _marked_datasets(metafunc)
        compressions = _marked_compressions(metafunc)
    except ConfigError as error:
        raise pytest.fail.Exception(f"{metafunc.definition.nodeid}: {error}", pytrace=False) from None
    models = settings.models.ids
    if len(models) > 1 and "clip_model" in metafunc.fixturenames:
        metafunc.parametrize("clip_model", models, indirect=True, ids=[safe_id(m) for m in models], scope="session")
    if datasets and compressions:
        cases = [(d, c) for d in datasets for c in compressions]
        ids = [f"{dataset_id(d)}-{c.id}" for d, c in cases]
        metafunc.parametrize(("clip_dataset", "compression"), cases, indirect=True, ids=ids)
    elif datasets:
        metafunc.parametrize("clip_dataset", datasets, indirect=True, ids=[dataset_id(d) for d in datasets])
    elif compressions:
        metafunc.parametrize("compression", compressions, indirect=True, ids=[c.id for c in compressions])


def _refuse_near_misses(metafunc: pytest.Metafunc) -> None:
    """An unregistered marker whose name is close to one of ours is a typo that would run the case uncompressed
    or without its dataset: a collection error naming the right marker, with or without ``--strict-markers``."""
    registered = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in metafunc.config.getini("markers")}
    for mark in metafunc.definition.iter_markers():
        if mark.name in registered or mark.name in MARKERS:
            continue
        close = difflib.get_close_matches(mark.name, MARKERS, n=1, cutoff=0.75)
        if close:
            raise ConfigError(
                f"@pytest.mark.{mark.name} is not a marker; did you mean @pytest.mark.{close[0]}? "
                "(pytest's --strict-markers turns every unknown marker into an error)"
            )


def _in_written_order(metafunc: pytest.Metafunc, name: str) -> list[pytest.Mark]:
    # Stacked decorators are stored innermost first; reverse to read them top to bottom.
    return list(reversed(list(metafunc.definition.iter_markers(name))))


def _marked_datasets(metafunc: pytest.Metafunc) -> list[str]:
    from ..data.registry import validate_dataset_name

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
    from ..codecs.compression import expand

    cases: list[Compression] = []
    for mark in _in_written_order(metafunc, "compression"):
        if len(mark.args) != 1:
            raise ConfigError("compression takes one codec name and its parameters, e.g. @pytest.mark.compression('jpeg', quality=[75, 50])")
        for case in expand(mark.args[0], mark.kwargs):
            if case not in cases:
                cases.append(case)
    return cases
