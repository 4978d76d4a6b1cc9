"""A pytest plugin (``-p session_timer``) that times the session from inside it.

The clock starts before any ``pytest_sessionstart`` implementation runs (a wrapper, tried first) and
stops after every ``pytest_sessionfinish`` implementation (a wrapper, tried first, so it is the
outermost): the plugin's own start-up work (registering model configs) and its end-of-run work
(terminal table, results and reports) are inside; pytest's start-up (importing its plugins,
hypothesis included) is outside. Writes ``{"seconds": ..., "sessionstart_seconds": ...}`` to ``$CLIPCOMPRESS_SESSION_TIMING``; the second
figure is the ``pytest_sessionstart`` part alone, where the plugin imports torch and open_clip.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

_started: list[float] = []


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> Iterator[None]:
    _started.append(time.perf_counter())
    result = yield
    _started.append(time.perf_counter())  # every sessionstart done: the plugin's imports of torch and open_clip
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Iterator[None]:
    result = yield
    seconds = time.perf_counter() - _started[0]
    with open(os.environ["CLIPCOMPRESS_SESSION_TIMING"], "w", encoding="utf-8") as handle:
        json.dump({"seconds": seconds, "sessionstart_seconds": _started[1] - _started[0]}, handle)
    return result
