"""Unit conversion: length, mass, volume, speed, time, data, and temperature (affine)."""

from __future__ import annotations

from ..base import tool

# Factor to the dimension's base unit (metre, kilogram, litre, metre/second, second, byte).
_UNITS: dict[str, tuple[str, float]] = {}


def _add(dim: str, factor: float, *names: str) -> None:
    for n in names:
        _UNITS[n] = (dim, factor)


_add("length", 1.0, "m", "meter", "meters", "metre", "metres")
_add("length", 1000.0, "km", "kilometer", "kilometers", "kilometre", "kilometres")
_add("length", 0.01, "cm", "centimeter", "centimeters", "centimetre", "centimetres")
_add("length", 0.001, "mm", "millimeter", "millimeters", "millimetre", "millimetres")
_add("length", 1609.344, "mi", "mile", "miles")
_add("length", 0.9144, "yd", "yard", "yards")
_add("length", 0.3048, "ft", "foot", "feet")
_add("length", 0.0254, "in", "inch", "inches")
_add("length", 1852.0, "nmi", "nautical mile", "nautical miles")
# British spellings too: Whisper writes "kilogrammes" for an en-GB speaker.
_add("mass", 1.0, "kg", "kilogram", "kilograms", "kilogramme", "kilogrammes", "kilo", "kilos")
_add("mass", 0.001, "g", "gram", "grams", "gramme", "grammes")
_add("mass", 1e-6, "mg", "milligram", "milligrams", "milligramme", "milligrammes")
_add("mass", 0.45359237, "lb", "lbs", "pound", "pounds")
_add("mass", 0.028349523125, "oz", "ounce", "ounces")
_add("mass", 6.35029318, "st", "stone", "stones")
_add("mass", 1000.0, "t", "tonne", "tonnes", "metric ton", "metric tons")
_add("volume", 1.0, "l", "liter", "liters", "litre", "litres")
_add("volume", 0.001, "ml", "milliliter", "milliliters", "millilitre", "millilitres")
_add("volume", 3.785411784, "gal", "gallon", "gallons", "us gallon", "us gallons")
_add("volume", 0.946352946, "qt", "quart", "quarts")
_add("volume", 0.473176473, "pt", "pint", "pints")
_add("volume", 0.2365882365, "cup", "cups")
_add("volume", 0.0295735295625, "fl oz", "fluid ounce", "fluid ounces")
_add("volume", 0.01478676478125, "tbsp", "tablespoon", "tablespoons")
_add("volume", 0.00492892159375, "tsp", "teaspoon", "teaspoons")
_add("speed", 1.0, "m/s", "meters per second", "metres per second")
_add("speed", 1000 / 3600, "km/h", "kph", "kmh", "kilometers per hour", "kilometres per hour")
_add("speed", 1609.344 / 3600, "mph", "miles per hour")
_add("speed", 1852 / 3600, "knot", "knots", "kn")
_add("time", 1.0, "s", "sec", "second", "seconds")
_add("time", 60.0, "min", "minute", "minutes")
_add("time", 3600.0, "h", "hr", "hour", "hours")
_add("time", 86400.0, "day", "days")
_add("time", 604800.0, "week", "weeks")
_add("data", 1.0, "b", "byte", "bytes")
_add("data", 1e3, "kb", "kilobyte", "kilobytes")
_add("data", 1e6, "mb", "megabyte", "megabytes")
_add("data", 1e9, "gb", "gigabyte", "gigabytes")
_add("data", 1e12, "tb", "terabyte", "terabytes")
_TEMPS = {
    "c": "C", "celsius": "C", "degrees celsius": "C", "centigrade": "C",
    "f": "F", "fahrenheit": "F", "degrees fahrenheit": "F",
    "k": "K", "kelvin": "K", "kelvins": "K",
}  # fmt: skip


def _norm(unit: str) -> str:
    u = unit.strip().lower().replace("°", "").replace("degree ", "degrees ")
    return u[:-1] if u.endswith(".") else u


def convert(value: float, from_unit: str, to_unit: str) -> float:
    a, b = _norm(from_unit), _norm(to_unit)
    if a in _TEMPS and b in _TEMPS:
        c = {"C": lambda v: v, "F": lambda v: (v - 32) * 5 / 9, "K": lambda v: v - 273.15}[_TEMPS[a]](value)
        return {"C": lambda v: v, "F": lambda v: v * 9 / 5 + 32, "K": lambda v: v + 273.15}[_TEMPS[b]](c)
    if a not in _UNITS:
        raise ValueError(f"unknown unit {from_unit!r}")
    if b not in _UNITS:
        raise ValueError(f"unknown unit {to_unit!r}")
    (da, fa), (db, fb) = _UNITS[a], _UNITS[b]
    if da != db:
        raise ValueError(f"cannot convert {da} ({from_unit}) to {db} ({to_unit})")
    return value * fa / fb


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units of length, weight, volume, speed, time, data size or temperature.

    Args:
        value: the number to convert.
        from_unit: the unit it is in, e.g. "miles", "kg", "fahrenheit", "cups".
        to_unit: the unit wanted, e.g. "kilometers", "pounds", "celsius", "ml".
    """
    out = convert(value, from_unit, to_unit)
    shown = f"{out:.4g}" if abs(out) < 1e6 else f"{out:,.0f}"
    return f"{value:g} {from_unit} = {shown} {to_unit}"
