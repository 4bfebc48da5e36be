"""DriftGuard: a data-drift monitor for SQL sources."""

__version__ = "0.1.0"
