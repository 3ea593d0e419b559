"""guomen serving package."""
