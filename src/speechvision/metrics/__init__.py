"""Metrics as staged pure functions: images -> features -> statistics -> score."""
