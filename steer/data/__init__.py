"""Small data files steer ships (reference texts for residual-norm units)."""
