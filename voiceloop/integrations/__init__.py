"""Integrations with other voice frameworks (optional extras)."""
