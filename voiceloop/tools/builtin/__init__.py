"""Built-in tools for the local assistant, one module each: the time, timers and reminders, a calculator,
unit conversion, and an HTTP example in Home Assistant's REST shape. All real: nothing is pretended."""

from .calculator import calculate
from .clock import current_time
from .units import convert_units

__all__ = ["calculate", "convert_units", "current_time"]
