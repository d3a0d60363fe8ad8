from __future__ import annotations

from pathlib import Path

from socle.referentials.directory._lines import decode_line, first_line, read_lines


def test_decode_prefers_strict_utf8() -> None:
    assert decode_line("Hélène".encode()) == ("Hélène", "utf-8")
    assert decode_line("Hélène".encode("cp1252")) == ("Hélène", "cp1252")
    assert decode_line("œuvre – €".encode("cp1252")) == ("œuvre – €", "cp1252")
    # 0x81 is unassigned in cp1252: Latin-1 takes any byte, so no line is lost.
    assert decode_line(b"A\x81B") == ("A\x81B", "latin-1")


def test_read_lines_strips_bom_and_terminators_and_mixes_encodings(tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"\xef\xbb\xbfen-t\xc3\xaate\r\n" + "Lefèvre\n".encode("cp1252") + "Noël".encode())
    lines = list(read_lines(path))
    assert [(line.number, line.text, line.encoding) for line in lines] == [
        (1, "en-tête", "utf-8"),
        (2, "Lefèvre", "cp1252"),
        (3, "Noël", "utf-8"),
    ]
    assert sum(line.size for line in lines) == path.stat().st_size
    assert first_line(path) == "en-tête"
