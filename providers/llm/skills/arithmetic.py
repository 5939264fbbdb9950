"""Simple sums said aloud: "what is 17 times 23", "15 percent of 80", "square root of 2"."""

from __future__ import annotations

import math

from app.plugin.errors import ErrorCode, VoiceError
from providers.llm.skills.numbers import DIGITS, TENS, UNITS, read_number, say_number, tokenize

_BINARY = [
    (("multiplied", "by"), "*"),
    (("divided", "by"), "/"),
    (("to", "the", "power", "of"), "^"),
    (("percent", "of"), "%of"),
    (("times",), "*"),
    (("x",), "*"),
    (("×",), "*"),
    (("*",), "*"),
    (("plus",), "+"),
    (("+",), "+"),
    (("minus",), "-"),
    (("-",), "-"),
    (("less",), "-"),
    (("over",), "/"),
    (("/",), "/"),
    (("÷",), "/"),
    (("^",), "^"),
]
_UNARY_POSTFIX = {"squared": 2, "cubed": 3}
_SAY_OP = {"+": "plus", "-": "minus", "*": "times", "/": "divided by", "^": "to the power of", "%of": "percent of"}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "%of": 2, "^": 3}
_FILLER = {
    "what",
    "what's",
    "whats",
    "is",
    "calculate",
    "compute",
    "how",
    "much",
    "many",
    "tell",
    "me",
    "please",
    "can",
    "you",
    "could",
    "the",
    "answer",
    "to",
    "of",
    "equals",
    "equal",
    "=",
    "hey",
    "ok",
    "okay",
    "voxdesk",
    "work",
    "out",
    "result",
    "so",
    "um",
    "uh",
    "quick",
    "question",
    "do",
    "does",
    "make",
}


class _NotArithmetic(Exception):
    pass


def _parse_expression(tokens: list[str]) -> tuple[list[float | str], str]:
    """Tokens → RPN (shunting-yard) and a spoken echo of the question."""
    out: list[float | str] = []
    ops: list[str] = []
    spoken: list[str] = []
    i, expect_number, operations = 0, True, 0
    while i < len(tokens):
        if expect_number:
            if tokens[i] in ("square", "root") and tokens[i : i + 3] == ["square", "root", "of"]:
                read = read_number(tokens, i + 3)
                if read is None:
                    raise _NotArithmetic
                if read[0] < 0:
                    raise VoiceError("llm.skills", ErrorCode.INVALID_CONFIG, "negative square root")
                out.append(math.sqrt(read[0]))
                spoken.append(f"the square root of {say_number(read[0])}")
                i, expect_number, operations = read[1], False, operations + 1
                continue
            read = read_number(tokens, i)
            if read is None:
                raise _NotArithmetic
            out.append(read[0])
            spoken.append(say_number(read[0]))
            i, expect_number = read[1], False
            continue
        tok = tokens[i]
        if tok in _UNARY_POSTFIX:
            out.extend([float(_UNARY_POSTFIX[tok]), "^"])
            spoken.append(tok)
            i, operations = i + 1, operations + 1
            continue
        for words, op in _BINARY:
            if tuple(tokens[i : i + len(words)]) == words:
                while ops and _PRECEDENCE[ops[-1]] >= _PRECEDENCE[op] and op != "^":
                    out.append(ops.pop())
                ops.append(op)
                spoken.append(_SAY_OP[op])
                i += len(words)
                expect_number, operations = True, operations + 1
                break
        else:
            raise _NotArithmetic
    if expect_number or operations == 0:
        raise _NotArithmetic
    while ops:
        out.append(ops.pop())
    return out, " ".join(spoken)


def _evaluate(rpn: list[float | str]) -> float:
    stack: list[float] = []
    for item in rpn:
        if isinstance(item, float):
            stack.append(item)
            continue
        b, a = stack.pop(), stack.pop()
        if item == "+":
            stack.append(a + b)
        elif item == "-":
            stack.append(a - b)
        elif item == "*":
            stack.append(a * b)
        elif item == "/":
            if b == 0:
                raise ZeroDivisionError
            stack.append(a / b)
        elif item == "%of":
            stack.append(a / 100 * b)
        elif item == "^":
            if abs(b) > 64 or abs(a) > 1e6:
                raise OverflowError
            stack.append(a**b)
    return stack[0]


def answer_arithmetic(text: str) -> str | None:
    """'what is 17 times 23' → '17 times 23 is 391.'; None if it is not a sum."""
    tokens = [t for t in tokenize(text) if t not in ("(", ")")]
    while tokens and tokens[0] in _FILLER:
        tokens.pop(0)
    while tokens and tokens[-1] in _FILLER:
        tokens.pop()
    if len(tokens) < 2 or not any(DIGITS.match(t) or t in UNITS or t in TENS for t in tokens):
        return None
    if not any(t in _UNARY_POSTFIX or t in ("root",) or any(t == w[0] for w, _ in _BINARY) for t in tokens):
        return None
    try:
        rpn, spoken = _parse_expression(tokens)
    except _NotArithmetic:
        return None
    except VoiceError:
        return "I can only take square roots of positive numbers."
    if not rpn:
        return None
    try:
        value = _evaluate(rpn)
    except ZeroDivisionError:
        return "You can't divide by zero."
    except (OverflowError, IndexError):
        return "That number is too large for me to say."
    exact = abs(value - round(value, 2)) < 1e-9
    return f"{spoken} is {'' if exact else 'about '}{say_number(value)}."
