"""torch modules bnconvert builds (each file self-contained, importing only torch)."""
