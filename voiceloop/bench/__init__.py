"""Benchmarks: ``voiceloop bench llm``."""
