"""Latency budgets: per-turn timestamps, per-stage ms, p50/p95 over a session."""
