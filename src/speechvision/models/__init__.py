"""Models: one file per family, each with its config dataclass beside it."""
