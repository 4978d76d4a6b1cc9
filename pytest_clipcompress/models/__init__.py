"""Models: resolving ``--clip-model`` entries to open_clip names, weights and activations
(:mod:`.resolve`), loading them as published (:mod:`.load`), prompts (:mod:`.prompts`) and the
zero-shot head (:mod:`.zero_shot`). Imports open_clip and torch only inside functions."""
