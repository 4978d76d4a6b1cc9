"""``--clip-model [ROLE=]NAME[:WEIGHTS]``: models with a role and their own weights.

Parsing, in this order:

1. ``ROLE=`` prefix: the text before the first ``=`` is a role when it is an identifier
   (letters, digits, ``_``, ``.``, ``-``; not starting with a digit, ``.`` or ``-``). Otherwise the
   ``=`` belongs to the rest (``ViT-B-32:/runs/lr=0.1/ckpt.pt`` has no role).
2. ``hf-hub:`` and ``local-dir:`` names are whole: everything after the role is the name, and the
   weights are the ones open_clip loads for it (``hf-hub:org/repo``, ``local-dir:C:\\models\\x``).
3. Otherwise the name ends at the first ``:``; what follows is the weights, exactly like a
   ``--clip-pretrained`` value (a tag, a checkpoint path, ``none``). open_clip names contain no
   ``:``, so Windows paths (``ViT-B-32:C:\\ckpt\\epoch13.pt``) and URLs keep their own colons.

The id of an entry (its role, else its model name) is the comparison key in results and baselines
and the model part of test ids; ids must be unique.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

ROLE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
WHOLE_NAME_SCHEMES = ("hf-hub:", "local-dir:")


@dataclass(frozen=True)
class ModelEntry:
    """One ``--clip-model`` value: what to load and under which id."""

    name: str
    weights: str | None = None  # None: --clip-pretrained, else the model's default
    role: str | None = None

    @property
    def id(self) -> str:
        return self.role or self.name


def parse_model_entry(text: str) -> ModelEntry:
    """Parse ``[ROLE=]NAME[:WEIGHTS]`` (see the module docstring for the rules)."""
    value = text.strip()
    role = None
    head, separator, rest = value.partition("=")
    if separator and ROLE_PATTERN.match(head):
        role, value = head, rest.strip()
    if not value:
        raise ConfigError(f"--clip-model {text!r} names no model; use [ROLE=]NAME[:WEIGHTS], e.g. candidate=ViT-B-32:/ckpt/epoch13.pt")
    if value.startswith(WHOLE_NAME_SCHEMES):
        return ModelEntry(value, None, role)
    name, separator, weights = value.partition(":")
    if separator and not weights.strip():
        raise ConfigError(f"--clip-model {text!r}: nothing after ':'; give weights (a tag, a checkpoint file or none) or drop the ':'")
    if not name:
        raise ConfigError(f"--clip-model {text!r} names no model before ':'; use [ROLE=]NAME[:WEIGHTS]")
    return ModelEntry(name, weights.strip() or None, role)


def parse_model_entries(values: list[str] | tuple[str, ...]) -> tuple[ModelEntry, ...]:
    entries = tuple(parse_model_entry(value) for value in values)
    ids = [entry.id for entry in entries]
    repeated = sorted({model_id for model_id in ids if ids.count(model_id) > 1})
    if repeated:
        raise ConfigError(
            f"--clip-model: the id {', '.join(map(repr, repeated))} is used twice; give each model its own role, "
            "e.g. --clip-model candidate=ViT-B-32:/ckpt/new.pt --clip-model release=ViT-B-32:openai"
        )
    return entries
