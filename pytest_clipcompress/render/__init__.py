"""Renderers: turn the run's records into reports (they read records, never compute)."""
