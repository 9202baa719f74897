"""Built-in tools for the local assistant, one module each: the time, timers and reminders, a calculator,
unit conversion, and an HTTP example in Home Assistant's REST shape. All real: nothing is pretended."""

from ..base import Tool
from .calculator import calculate
from .clock import current_time
from .home_assistant import HomeAssistant
from .timers import Timers
from .units import convert_units


def builtin_tools() -> list[Tool]:
    """The stateless built-ins (add a ``Timers()`` per conversation, and ``HomeAssistant`` if you have one)."""
    return [current_time, calculate, convert_units]


__all__ = ["HomeAssistant", "Timers", "builtin_tools", "calculate", "convert_units", "current_time"]
