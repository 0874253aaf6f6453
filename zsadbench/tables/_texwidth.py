"""Estimated widths, in points, of the LaTeX the table renderers write, set in 10 pt Computer Modern.

The renderers split or scale a table to fit a text width, which needs each column's width before LaTeX runs.
The estimate reads the few constructs the renderers emit (``\\textbf``, ``\\textcolor``, ``\\underline``,
``\\textit``, ``\\multirow``, ``{\\scriptsize …}``, ``$…$`` with ``\\pm``/``\\dagger``/superscripts, ``\\makecell``
lines, the escapes of ``_latex.escape``) with the font's character widths (within a few percent of what pdflatex
sets); unknown characters count as a ``W`` so it errs wide.
"""
from __future__ import annotations

#: TeX points per cm
PT_PER_CM = 72.27 / 2.54
#: horizontal space LaTeX puts around each column (2 × \tabcolsep)
COLUMN_PAD = 12.0
BOLD = 1.15
SCRIPT = 0.78  # 7 pt glyphs (cmr7) are wider than 0.7 × 10 pt ones

_CMR10 = {
    **dict.fromkeys("0123456789", 5.0), **dict.fromkeys(".,:;!'`", 2.78), "(": 3.89, ")": 3.89, "[": 2.78,
    "]": 2.78, "-": 3.33, "/": 5.0, "=": 7.78, "+": 7.78, " ": 3.33, "*": 5.0, "?": 4.72, "@": 7.78, "|": 2.78,
    "<": 7.78, ">": 7.78, '"': 5.0,
    "a": 5.0, "b": 5.56, "c": 4.44, "d": 5.56, "e": 4.44, "f": 3.06, "g": 5.0, "h": 5.56, "i": 2.78, "j": 3.06,
    "k": 5.28, "l": 2.78, "m": 8.33, "n": 5.56, "o": 5.0, "p": 5.56, "q": 5.28, "r": 3.92, "s": 3.94, "t": 3.89,
    "u": 5.56, "v": 5.28, "w": 7.22, "x": 5.28, "y": 5.28, "z": 4.44,
    "A": 7.5, "B": 7.08, "C": 7.22, "D": 7.64, "E": 6.81, "F": 6.53, "G": 7.85, "H": 7.5, "I": 3.61, "J": 5.14,
    "K": 7.78, "L": 6.25, "M": 9.17, "N": 7.5, "O": 7.78, "P": 6.81, "Q": 7.78, "R": 7.36, "S": 5.56, "T": 7.22,
    "U": 7.5, "V": 7.5, "W": 10.28, "X": 7.5, "Y": 7.5, "Z": 6.11,
}
_WIDE = 10.28
#: commands that print one glyph (text escapes and math symbols)
_SYMBOLS = {
    "_": 5.0, "&": 7.78, "%": 8.33, "$": 5.0, "#": 8.33, "{": 5.0, "}": 5.0, "textasciitilde": 5.0,
    "textasciicircum": 5.0, "textbackslash": 5.0, "pm": 7.78, "times": 7.78, "dagger": 4.44, "ddagger": 4.44,
    "circ": 5.0, "uparrow": 5.0, "downarrow": 5.0, "Delta": 8.33, "S": 4.44, ",": 1.67,
}
_SIZES = {"scriptsize": SCRIPT}
#: commands whose arguments before the last are not printed
_SKIP_ARGS = {"textcolor": 1, "multirow": 2}


def tex_width(text: str) -> float:
    """Estimated width in pt of one line or cell of LaTeX (a ``\\makecell``: its widest line)."""
    width, _ = _group(text, 0, 1.0, False)
    return width


def _group(text: str, i: int, scale: float, bold: bool, *, until: str = "", math: bool = False
           ) -> tuple[float, int]:
    """Width of ``text[i:]`` up to the closing ``until`` ("}" or "$"), and the index after it."""
    width = 0.0
    while i < len(text):
        ch = text[i]
        if until and ch == until:
            return width, i + 1
        if ch == "{":
            w, i = _group(text, i + 1, scale, bold, until="}", math=math)
            width += w
        elif ch == "$":
            w, i = _group(text, i + 1, scale, bold, until="$", math=True)
            width += w
        elif math and ch in "^_" and i + 1 < len(text):
            i += 1
            if text[i] == "{":
                w, i = _group(text, i + 1, scale * SCRIPT, bold, until="}", math=True)
            else:
                w, i = _char(text[i], scale * SCRIPT, bold), i + 1
            width += w
        elif ch == "\\":
            w, i, scale = _command(text, i + 1, scale, bold)
            width += w
        else:
            if not (math and ch == " "):  # spaces are ignored in math; a minus there is the wider operator
                width += 7.78 * scale if math and ch in "-+" else _char(ch, scale, bold)
            i += 1
    return width, i


def _command(text: str, i: int, scale: float, bold: bool) -> tuple[float, int, float]:
    """Width of the command at ``text[i:]`` (after its backslash), the index after it and the size it sets."""
    j = i
    while j < len(text) and text[j].isalpha():
        j += 1
    name = text[i:j] or text[i]
    j = max(j, i + 1)
    if name in _SIZES:
        return 0.0, j, _SIZES[name]
    if name == "\\":  # a line break inside \makecell is handled there
        return 0.0, j, scale
    if name in _SYMBOLS:
        if text.startswith("{}", j):
            j += 2
        return _SYMBOLS[name] * scale, j, scale
    if name == "makecell":
        if text.startswith("[", j):
            j = text.index("]", j) + 1
        end = _closing(text, j)
        lines = _split_lines(text[j + 1:end])
        return max(tex_width(line) for line in lines) * scale, end + 1, scale
    args = []
    while j < len(text) and text[j] == "{":
        end = _closing(text, j)
        args.append(text[j + 1:end])
        j = end + 1
    if not args:
        return 0.0, j, scale
    shown = args[_SKIP_ARGS.get(name, 0):] or args[-1:]
    width = sum(_group(a, 0, scale, bold or name == "textbf")[0] for a in shown)
    return width, j, scale


def _char(ch: str, scale: float, bold: bool) -> float:
    return _CMR10.get(ch, _WIDE) * scale * (BOLD if bold else 1.0)


def _closing(text: str, start: int) -> int:
    """The index of the brace that closes the one at ``start``."""
    depth, k = 0, start
    while k < len(text):
        if text[k] == "\\":  # an escaped character (\{, \}, \\) never opens or closes
            k += 2
            continue
        depth += (text[k] == "{") - (text[k] == "}")
        if depth == 0:
            return k
        k += 1
    return len(text) - 1


def _split_lines(text: str) -> list[str]:
    lines, depth, start, k = [], 0, 0, 0
    while k < len(text):
        if text.startswith("\\\\", k) and depth == 0:
            lines.append(text[start:k])
            start = k = k + 2
            continue
        if text[k] == "\\":
            k += 2
            continue
        depth += (text[k] == "{") - (text[k] == "}")
        k += 1
    return lines + [text[start:]]
