"""Configuration: the ``--clip-*`` options and the plain settings built from them (no domain imports)."""
