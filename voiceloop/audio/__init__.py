"""Audio at the edges: file reading, resampling, voice activity detection."""
