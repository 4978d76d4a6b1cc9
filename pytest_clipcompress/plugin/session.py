"""One pytest-clipcompress session per pytest run, in ``config.stash``: the settings, the baseline
file (read once), the evaluator, and where this process runs (xdist controller or worker).

The hooks in :mod:`.` delegate here and to the two parts of the work: :class:`~.worker.TestWork`
(a test's evaluations and attributions, in whichever process runs the test) and
:class:`~.controller.Controller` (gathering records and writing every output, in the one process
that writes files).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest

from ..config.options import OPTIONS, cpu_share
from ..config.settings import Settings
from ..errors import ClipCompressError
from ..files import OutputKind, check_output_path
from .progress import progress_printer

if TYPE_CHECKING:
    from pathlib import Path

    from ..engine.evaluator import Evaluator
    from ..results.file import ResultsFile

DEMO_NOTE = "bundled demo model; pass --clip-model for a real one"

SESSION = pytest.StashKey["ClipSession"]()


class ClipSession:
    """The run's state; get it with :meth:`of`."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.baseline: ResultsFile | None = None  # --clip-baseline, read at the session's start
        self._evaluator: Evaluator | None = None

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
    def cpu_share(self) -> int | None:
        """Under xdist, each worker's share of the CPU cores (its torch threads and its codec processes); None: no xdist."""
        workers = getattr(self.config, "workerinput", {}).get("workercount")
        return cpu_share(int(workers)) if workers else None

    @property
    def demo_note(self) -> str | None:
        return DEMO_NOTE if self.settings.models.uses_demo_model else None

    @property
    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            from ..engine.evaluator import Evaluator

            settings = self.settings
            progress = progress_printer(self.config) if self.is_controller else None
            self._evaluator = Evaluator(settings.models, settings.data, settings.evaluation, self.worker_index, progress, self.cpu_share)
        return self._evaluator

    def close(self) -> None:
        """The end of the run (also after Ctrl-C): the evaluator's worker processes end."""
        if self._evaluator is not None:
            self._evaluator.close()

    # --- start --------------------------------------------------------------------------------

    def header(self) -> list[str]:
        settings = self.settings
        model = self.demo_note or ", ".join(settings.models.ids) + f" (pretrained: {settings.models.pretrained or 'default'})"
        samples = "every image" if settings.data.samples is None else f"up to {settings.data.samples} images per dataset"
        return [f"clipcompress: {model}; device {settings.evaluation.device}; {samples}; seed {settings.data.seed}"]

    def start(self) -> None:
        """Check models, the baseline, device and output paths before any test runs: a typo is one usage error."""
        settings = self.settings
        self._check_rootdir()
        try:
            # Only when the user named models or configs: a plain run must not pay open_clip's import.
            # An explicit --clip-pretrained is checked for the demo model too (a missing file, an unknown tag).
            models = settings.models
            if models.configs or not models.uses_demo_model:
                from ..models.resolve import model_config_paths, register_model_configs, spec_for

                register_model_configs(model_config_paths(models.configs))
                for model_id in models.ids:
                    spec_for(models, model_id)
            if settings.outputs.baseline is not None:
                from ..results.file import load_results_file

                # A missing or foreign file is a usage error now, not a failure per test; read once, here.
                self.baseline = load_results_file(settings.outputs.baseline, "--clip-baseline")
            if settings.evaluation.device not in ("auto", "cpu"):
                from ..models.load import resolve_device

                resolve_device(settings.evaluation.device, None)
            if self.is_controller:
                for flag, path, kind in self._outputs():
                    check_output_path(flag, path, kind)
        except ClipCompressError as error:
            raise pytest.UsageError(str(error)) from None
        if settings.evaluation.cache_clear and self.is_controller and not settings.evaluation.no_cache:
            from ..engine.cache import LogitsCache

            LogitsCache(settings.evaluation.cache_dir).clear()

    def _check_rootdir(self) -> None:
        """``--clip-data-root /data/cifar`` (two words) makes pytest take /data/cifar for a test path when it chooses
        its rootdir and ini file, which it does before any plugin adds its options: a folder outside the one pytest
        runs in then moves the rootdir and loses the project's ini file. Say so instead of running with the wrong
        settings (the ``=`` form has no such problem)."""
        from pathlib import Path

        args = [str(arg) for arg in self.config.invocation_params.args]
        invocation = self.config.invocation_params.dir.resolve()
        flags = {option.flag for option in OPTIONS if option.kind != "flag"}
        for flag, value in itertools.pairwise(args):
            path = Path(value).expanduser()
            if flag in flags and path.exists() and not path.resolve().is_relative_to(invocation):
                raise pytest.UsageError(
                    f"pytest took {value} for a test path when it chose its rootdir ({self.config.rootpath}) and ini file "
                    f"({self.config.inipath or 'none'}), because {flag} {value} was given as two words: pytest reads its command line "
                    f"for them before plugins add their options. Write {flag}={value}"
                )

    def _outputs(self) -> list[tuple[str, Path, OutputKind]]:
        outputs, evaluation = self.settings.outputs, self.settings.evaluation
        checked: list[tuple[str, Path | None, OutputKind]] = [
            ("--clip-results", outputs.results, "file"),
            ("--clip-baseline-save", outputs.baseline_save, "file"),
            ("--clip-report", outputs.report, "dir"),
            ("--clip-summary", outputs.summary, "file"),
            ("--clip-cache-dir", None if evaluation.no_cache else evaluation.cache_dir, "dir"),
        ]
        return [(flag, path, kind) for flag, path, kind in checked if path]
