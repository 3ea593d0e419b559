"""guomen training package."""
