"""guomen demo package."""
