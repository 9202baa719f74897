"""Speech recognition: faster-whisper with windows sized to the audio, and streaming."""
