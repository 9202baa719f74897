"""``voiceloop profile``: recorded audio through the real pipeline, in real time."""
