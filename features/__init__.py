"""guomen features package."""
