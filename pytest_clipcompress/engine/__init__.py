"""The engine: evaluations from explicit inputs (:mod:`.evaluator`), their results (:mod:`.result`),
the image pipeline and preprocessing, the logits cache, metrics, statistics and the breaking-point
search. Imports torch only inside functions."""
