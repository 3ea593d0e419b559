"""guomen policy package."""
