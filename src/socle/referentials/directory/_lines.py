"""Reading the public extraction files line by line, whatever their encoding.

The Annuaire Santé extractions are UTF-8 in recent years (sometimes with a BOM), older ones and the
FINESS etalab file are Latin-1 / Windows-1252, and a file stitched from several sources can mix both.
So each line is decoded on its own: UTF-8 strictly first (a Latin-1 "é" is an invalid UTF-8 byte,
so a wrong guess fails loudly instead of producing mojibake), then Windows-1252, then Latin-1 (which
decodes any byte, so no line is ever lost to decoding). The caller learns which lines fell back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Line", "decode_line", "first_line", "read_lines"]

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, as an editor shows it
    text: str  # without the line terminator
    encoding: str  # "utf-8", "cp1252" or "latin-1"
    size: int  # bytes in the file, terminator included (for progress by bytes)


def decode_line(raw: bytes) -> tuple[str, str]:
    """(text, encoding used) for one line's bytes."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D are unassigned in cp1252
        return raw.decode("latin-1"), "latin-1"


def read_lines(path: Path) -> Iterator[Line]:
    """Stream the lines of `path` (binary reads, so memory stays flat on multi-GB files)."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            size = len(raw)
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            raw = raw.rstrip(b"\r\n")
            text, encoding = decode_line(raw)
            yield Line(number, text, encoding, size)


def first_line(path: Path) -> str:
    """The decoded first line (the header), to tell which kind of extraction a file is."""
    for line in read_lines(path):
        return line.text
    return ""
