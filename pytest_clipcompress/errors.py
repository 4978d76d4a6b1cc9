"""Errors a user can act on. The plugin turns them into pytest usage/collection errors or
short test failures, never into tracebacks."""

from __future__ import annotations


class ClipCompressError(Exception):
    """Base class: the message says what is wrong and what to do."""


class ConfigError(ClipCompressError):
    """A bad option, ini value or marker argument."""


class ModelError(ClipCompressError):
    """A model, pretrained tag, checkpoint or model config that cannot be loaded."""


class DatasetError(ClipCompressError):
    """A dataset that is corrupt, tampered with or unreadable."""


class DatasetMissingError(DatasetError):
    """Dataset files are absent and may not be downloaded (``--clip-offline``)."""
