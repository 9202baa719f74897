"""The model catalog: what is known, what is installed, where it is."""

from .registry import CatalogEntry, ModelStatus, catalog, ensure_gemma, model_path, model_status, voiceloop_home

__all__ = ["CatalogEntry", "ModelStatus", "catalog", "ensure_gemma", "model_path", "model_status", "voiceloop_home"]
