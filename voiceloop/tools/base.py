"""Declaring tools: ``@tool`` on a plain function (sync or async) gives a ``Tool`` with a JSON schema.

The type hints give the parameters' types, the docstring gives the description (its first paragraph)
and each parameter's description (a Google-style ``Args:`` section), as LiveKit's ``@function_tool``
does. The schema is what the model sees through its chat template's tools support.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from ..errors import ConfigError

_JSON_TYPES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments object."""
    fn: Callable[..., Any] = field(repr=False)
    is_async: bool = False
    timeout_s: float = 10.0

    def schema(self) -> dict[str, Any]:
        """The OpenAI / chat-template ``tools`` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def _type_schema(hint: Any) -> tuple[dict[str, Any], bool]:
    """(schema, optional) for one annotation."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _type_schema(args[0])[0], True
        raise ConfigError(f"tool parameters take one type, not a union: {hint}")
    if origin is Literal:
        values = list(get_args(hint))
        base = _JSON_TYPES.get(type(values[0]), "string")
        return {"type": base, "enum": values}, False
    if origin in (list, tuple):
        (item,) = get_args(hint)[:1] or (str,)
        return {"type": "array", "items": _type_schema(item)[0]}, False
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}, False
    raise ConfigError(f"unsupported tool parameter type {hint!r}: use str, int, float, bool, Literal, list or Optional")


def _doc_parts(doc: str) -> tuple[str, dict[str, str]]:
    """The description (text before ``Args:``) and per-parameter descriptions."""
    doc = inspect.cleandoc(doc or "")
    parts = re.split(r"^(?:Args|Arguments|Parameters):\s*$", doc, maxsplit=1, flags=re.M)
    head = parts[0].strip()
    params: dict[str, str] = {}
    if len(parts) > 1:
        current = None
        for line in parts[1].splitlines():
            m = re.match(r"^\s*(\w+)\s*(?:\([^)]*\))?:\s*(.*)$", line)
            if m:
                current = m.group(1)
                params[current] = m.group(2).strip()
            elif current and line.strip():
                params[current] += " " + line.strip()
    return " ".join(head.split()), params


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    timeout_s: float = 10.0,
) -> Any:
    """Make a plain function a tool the model can call. ``@tool`` or ``@tool(name=..., timeout_s=...)``."""

    def wrap(f: Callable[..., Any]) -> Tool:
        desc, arg_docs = _doc_parts(f.__doc__ or "")
        if not desc:
            raise ConfigError(f"tool {f.__name__!r} needs a docstring: it is the description the model reads")
        hints = typing.get_type_hints(f)
        props: dict[str, Any] = {}
        required: list[str] = []
        for p in inspect.signature(f).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ConfigError(f"tool {f.__name__!r}: *args/**kwargs cannot be described to a model")
            if p.name not in hints:
                raise ConfigError(f"tool {f.__name__!r}: parameter {p.name!r} needs a type hint")
            schema, optional = _type_schema(hints[p.name])
            if p.name in arg_docs:
                schema["description"] = arg_docs[p.name]
            props[p.name] = schema
            if p.default is inspect.Parameter.empty and not optional:
                required.append(p.name)
        params = {"type": "object", "properties": props, "required": required}
        return Tool(
            name=name or f.__name__,
            description=desc,
            parameters=params,
            fn=f,
            is_async=inspect.iscoroutinefunction(f),
            timeout_s=timeout_s,
        )

    return wrap(fn) if fn is not None else wrap
