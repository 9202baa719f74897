"""Core types: frames, clock, events, stages and the pipeline runner."""
