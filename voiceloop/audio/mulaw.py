"""G.711 μ-law, as telephony (Twilio Media Streams) carries it: 8 kHz, one byte a sample."""

from __future__ import annotations

import numpy as np

_BIAS = 0x84


def mulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def mulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 -> μ-law bytes, bit-exact with the classic G.711 reference (and CPython's audioop)."""
    v = pcm.astype(np.int32) >> 2  # 14-bit, as the reference encoder
    mask = np.where(v < 0, 0x7F, 0xFF)
    v = np.minimum(np.abs(v), 8159) + (_BIAS >> 2)
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), v)
    u = np.where(seg >= 8, 0x7F, (seg << 4) | ((v >> (seg + 1)) & 0x0F))
    return ((u ^ mask) & 0xFF).astype(np.uint8).tobytes()
