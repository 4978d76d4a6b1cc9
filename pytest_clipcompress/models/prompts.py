"""Prompt templates for zero-shot classification: ``--clip-templates`` chooses them.

``clip`` is the dataset's own ensemble (each dataset module holds the one published with CLIP);
``paper`` is the single prompt used by the seed paper's code (its grammar kept as published); or a
JSON file of the user's.
"""

from __future__ import annotations

from pathlib import Path

from ..config.options import load_template_file

PAPER_TEMPLATES = ("This is a image of a {}.",)


def resolve_templates(choice: str, dataset_templates: tuple[str, ...]) -> tuple[str, ...]:
    """Templates for ``--clip-templates``: ``clip`` (the dataset's ensemble), ``paper`` or a JSON file."""
    if choice == "clip":
        return dataset_templates
    if choice == "paper":
        return PAPER_TEMPLATES
    return load_template_file(Path(choice))
