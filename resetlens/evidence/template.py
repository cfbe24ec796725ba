"""Compile a log format string (`$var` for nginx, `%OPERATOR%` for Envoy) into one line regex.

Each variable becomes a named group whose pattern depends on the literal that follows it: up to the
closing quote inside quotes, up to `]` inside brackets, else up to the next space. A parser may give
known variables their own pattern (nginx `$upstream_*` lists contain spaces).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Pattern of a variable followed by a double quote / a closing bracket / anything else.
IN_QUOTES = r'(?:[^"\\]|\\.)*'
IN_BRACKETS = r"[^\]]*"
TOKEN = r"\S*"


def compile_template(
    template: str, var_re: re.Pattern[str], special: Callable[[str], str | None] | None = None
) -> tuple[re.Pattern[str], dict[str, str]]:
    """(line regex, group name -> variable name). `var_re` group 1 is the variable's name."""
    parts: list[str] = []
    groups: dict[str, str] = {}
    pos = 0
    matches = list(var_re.finditer(template))
    for i, m in enumerate(matches):
        parts.append(_literal(template[pos : m.start()]))
        name = m[1]
        follow = template[m.end() : m.end() + 1]
        pattern = special(name) if special else None
        if pattern is None:
            if follow == '"':
                pattern = IN_QUOTES
            elif follow == "]":
                pattern = IN_BRACKETS
            elif follow == "" and i == len(matches) - 1:
                pattern = r".*?"
            else:
                pattern = TOKEN
        group = f"v{len(groups)}"
        groups[group] = name
        parts.append(f"(?P<{group}>{pattern})")
        pos = m.end()
    parts.append(_literal(template[pos:]))
    return re.compile("".join(parts) + r"\s*$"), groups


def _literal(text: str) -> str:
    """A literal part of the format: runs of spaces match one or more spaces."""
    return r"\s+".join(re.escape(chunk) for chunk in re.split(r" +", text)) if text else ""
