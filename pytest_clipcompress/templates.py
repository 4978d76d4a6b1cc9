"""Prompt templates for zero-shot classification.

``clip`` ensembles are the ones published with CLIP for each dataset; ``paper`` is the single
prompt used by the seed paper's code (its grammar kept as published).
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError

CIFAR10_TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)
STL10_TEMPLATES = ("a photo of a {}.", "a photo of the {}.")
GENERIC_TEMPLATES = ("a photo of a {}.",)
PAPER_TEMPLATES = ("This is a image of a {}.",)


def resolve_templates(choice: str, dataset_templates: tuple[str, ...]) -> tuple[str, ...]:
    """Templates for ``--clip-templates``: ``clip`` (the dataset's ensemble), ``paper`` or a JSON file."""
    if choice == "clip":
        return dataset_templates
    if choice == "paper":
        return PAPER_TEMPLATES
    return load_template_file(Path(choice))


def load_template_file(path: Path) -> tuple[str, ...]:
    hint = 'it must be a JSON list of strings with "{}" where the class name goes, e.g. ["a photo of a {}."]'
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--clip-templates: {path} does not exist; use clip, paper or a JSON file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"--clip-templates: cannot read {path} ({error}); {hint}") from None
    if not isinstance(data, list) or not data or not all(isinstance(t, str) and "{}" in t for t in data):
        raise ConfigError(f"--clip-templates: {path} is not a usable template list; {hint}")
    for template in data:
        check_template(template, f"--clip-templates: {path}")
    return tuple(data)


def check_template(template: str, source: str) -> None:
    """Exactly one ``{}`` and no other brace: the class name is substituted with ``str.replace``, never ``format``."""
    if template.count("{}") != 1 or "{" in template.replace("{}", "") or "}" in template.replace("{}", ""):
        raise ConfigError(
            f"{source}: template {template!r} must hold exactly one {{}} where the class name goes and no other "
            "braces (format fields such as {0} or {name} are not supported)"
        )
