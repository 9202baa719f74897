"""Safe arithmetic: the expression is parsed (Python's ast) and evaluated node by node, never eval'd."""

from __future__ import annotations

import ast
import math
import operator
import re

from ..base import tool

_BIN = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS = {"sqrt": math.sqrt, "abs": abs, "round": round, "log": math.log, "log10": math.log10, "sin": math.sin,
          "cos": math.cos, "tan": math.tan, "exp": math.exp, "floor": math.floor, "ceil": math.ceil}  # fmt: skip
_CONSTS = {"pi": math.pi, "e": math.e}
_WORDS = [
    (r"\bmultiplied by\b|\btimes\b|\u00d7|\bx\b", "*"),
    (r"\bdivided by\b|÷", "/"),
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
    (r"\bto the power of\b|\^", "**"),
    (r"\bsquared\b", "**2"),
    (r"\bpercent of\b", "/100*"),
    (r"%(?=\s*$)", "/100"),
]


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1000:
            raise ValueError("exponent too large")
        return _BIN[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        return _FUNCS[node.func.id](*[_eval(a) for a in node.args])
    raise ValueError(f"not arithmetic: {ast.dump(node)[:60]}")


def evaluate(expression: str) -> float:
    text = expression.strip().lower().replace(",", "")
    for pattern, repl in _WORDS:
        text = re.sub(pattern, repl, text)
    if len(text) > 200:
        raise ValueError("expression too long")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot read {expression!r} as arithmetic") from None
    value = _eval(tree)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return round(value, 10) if isinstance(value, float) else value


@tool
def calculate(expression: str) -> str:
    """Work out an arithmetic expression exactly (use it for any sum, product, percentage or power).

    Args:
        expression: the arithmetic, e.g. "17 * 23", "(12.5 + 7) / 3", "15% of 80" as "15/100*80", "sqrt(2)".
    """
    return f"{expression} = {evaluate(expression)}"
