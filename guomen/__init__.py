"""guomen guomen package."""
