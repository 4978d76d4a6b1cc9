"""Results: the record types (:mod:`.schema`), per-image outcomes (:mod:`.per_image`), the run block
(:mod:`.metadata`), the controller's gathering of records into the results file (:mod:`.collector`)
and reading such files back (:mod:`.file`). Imports no model, engine or IG module."""
