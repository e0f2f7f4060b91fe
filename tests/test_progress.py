"""Progress shows on a terminal and stays silent for scripts."""

import io

from layerpeek.cli.progress import ProgressLine
from layerpeek.core.layers.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_bytes_rate_and_entries_then_a_clean_line():
    screen = Terminal()
    line = ProgressLine("listing", screen)
    line(Progress(bytes_read=3 * 1024 * 1024, total=8 * 1024 * 1024, entries=1234))
    drawn = screen.getvalue()
    assert drawn.startswith("\rlisting  3.0 MiB of 8.0 MiB")
    assert "/s" in drawn and "1,234 entries" in drawn
    line.close()
    assert screen.getvalue().endswith("\r")


def test_a_pipe_sees_nothing():
    pipe = io.StringIO()
    line = ProgressLine("listing", pipe)
    line(Progress(bytes_read=10, total=0, entries=1))
    line.close()
    assert pipe.getvalue() == ""


def test_render_without_a_known_total():
    text = ProgressLine("pulling", io.StringIO()).render(Progress(2048, 0, 0), elapsed=2.0)
    assert text == "pulling  2.0 KiB  1.0 KiB/s"
