"""Transports: how audio gets in and out (websocket bridge)."""
