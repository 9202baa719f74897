"""Tools the agent can call: declare them with ``@tool``, pass them to ``VoiceAgent(tools=[...])``.

    from voiceloop.tools import tool

    @tool
    def weather(city: str) -> str:
        \"\"\"Get today's weather forecast for a city.

        Args:
            city: the city, e.g. "Lisbon".
        \"\"\"
        return my_weather_service(city)

Calls are recognised in the streamed tokens before they reach the TTS (``calls``), run off the event
loop with a timeout and a spoken filler when slow (``runner``), and their results go back to the model.
"""

from .base import Tool, tool
from .builtin import HomeAssistant, Timers, builtin_tools
from .calls import ToolCall, ToolCallFilter, check_call
from .runner import ToolOptions, ToolResult, ToolRunner

__all__ = [
    "HomeAssistant",
    "Timers",
    "Tool",
    "ToolCall",
    "ToolCallFilter",
    "ToolOptions",
    "ToolResult",
    "ToolRunner",
    "builtin_tools",
    "check_call",
    "tool",
]
