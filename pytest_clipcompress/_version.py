"""The package version: one place, imported by the modules that write it into results and caches."""

__version__ = "0.1.0"
