"""A labeled detection benchmark: DriftGuard against faithful re-implementations of other tools."""
