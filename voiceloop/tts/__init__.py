"""Text to speech: Piper, clause by clause."""
