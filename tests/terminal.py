"""The program in a real pseudo-terminal, read through a terminal emulator (pyte): what a
person sees at a terminal, for the tests of questions, live displays and tables."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


class Terminal:
    """The program in a pseudo-terminal, its output read by a terminal emulator (pyte): ``seen``
    is everything it wrote, ``screen`` what a person sees now (a line erased is gone)."""

    def __init__(self, args: list[str], env: dict[str, str], columns: int = 160,
                 lines: int = 50, term: str = "xterm") -> None:
        import fcntl
        import struct
        import termios

        import pyte

        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        full = {k: v for k, v in os.environ.items() if not k.startswith("BASECONE_MIGRATE_")}
        full.pop("COLUMNS", None)
        full.pop("NO_COLOR", None)
        full.update(env, TERM=term)
        self.process = subprocess.Popen([sys.executable, "-m", "basecone_migrate", *args], env=full,
                                        stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.seen = ""
        self.raw = b""  # every byte, as the terminal received it
        self._screen = pyte.Screen(columns, lines)
        self._stream = pyte.ByteStream(self._screen)

    @property
    def screen(self) -> str:
        return "\n".join(line.rstrip() for line in self._screen.display)

    def _read(self, timeout: float) -> bool:
        """Read what the program wrote within ``timeout``; False when it wrote nothing."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            raw = os.read(self.master, 65536)
        except OSError:  # the program ended
            raw = b""
        self.raw += raw
        self._stream.feed(raw)
        self.seen += ANSI.sub("", raw.decode(errors="replace")).replace("\r", "")
        return bool(raw)

    def expect(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {text!r} in {self.seen!r}")
            self._read(0.1)
        return self.seen

    def waits_with(self, text: str, timeout: float = 30, quiet: float = 1.0) -> str:
        """Wait until the program waits (it writes nothing for ``quiet`` seconds and is still
        running); then ``text`` must be on the screen, as a person would see it."""
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"never waited with {text!r} on the screen:\n{self.screen}")
            if not self._read(quiet) and self.process.poll() is None and text in self.seen:
                assert text in self.screen, f"{text!r} is not on the screen:\n{self.screen}"
                return self.screen

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def finish(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:  # read meanwhile: a full terminal blocks the program
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"still running after {timeout} s:\n{self.screen}")
            self._read(0.1)
        while self._read(0.1):
            pass
        os.close(self.master)
        return self.process.returncode


def at_terminal(args: list[str], env: dict[str, str], columns: int = 160, lines: int = 50,
                term: str = "xterm", timeout: float = 60) -> bytes:
    """Run the program to its end (exit 0) in a terminal of that size; every byte it wrote."""
    terminal = Terminal(args, env, columns=columns, lines=lines, term=term)
    code = terminal.finish(timeout)
    assert code == 0, terminal.raw.decode(errors="replace")
    return terminal.raw


