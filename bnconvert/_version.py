"""The package version (one place; the manifest and the CLI read it here)."""

__version__ = "0.2.0"
