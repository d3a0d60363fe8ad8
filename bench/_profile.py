"""Sampling profile of the server process during a benchmark phase (py-spy), summarised as text.

py-spy is a developer tool, not a project dependency: install it into the virtualenv with
`.venv/bin/uv pip install --python .venv/bin/python py-spy`. The raw collapsed stacks are kept
(`--profile DIR`) for flame graphs (`flamegraph.pl`, speedscope).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from types import TracebackType

from _common import ROOT

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def py_spy() -> str | None:
    local = ROOT / ".venv" / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Profile:
    """`with Profile(pid, out):` samples pid (and its subprocesses) until the block ends."""

    def __init__(self, pid: int, output: Path, *, gil: bool = False, rate: int = 200) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy not found: .venv/bin/uv pip install --python .venv/bin/python py-spy")
        self.output = output
        self.command = [exe, "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
        self.command += ["--rate", str(rate), "--nonblocking", "--output", str(output)]
        if gil:
            self.command.append("--gil")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profile:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        self.process.wait(60)


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text.strip())
    if match is None:
        return text.strip(), ""
    return match["func"], match["file"]


def summarise(raw: Path, top: int = 25) -> str:
    """Inclusive and self sample shares by function, and self share by file, from collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";") if f.strip() and not f.startswith("process ")]
        frames = [f for f in frames if not f[0].startswith("thread ")]
        if not frames:
            continue
        for name in {f"{func} ({file})" for func, file in frames}:
            inclusive[name] += count
        func, file = frames[-1]
        own[f"{func} ({file})"] += count
        by_file[file] += count
    if total == 0:
        return "no samples"
    lines = [f"{total} samples (active threads; idle waits excluded)", "", "inclusive  function (file)"]
    lines += [f"{n / total * 100:8.1f} %  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "self       function (file)"]
    lines += [f"{n / total * 100:8.1f} %  {name}" for name, n in own.most_common(top)]
    lines += ["", "self       file"]
    lines += [f"{n / total * 100:8.1f} %  {name}" for name, n in by_file.most_common(15)]
    return "\n".join(lines)
