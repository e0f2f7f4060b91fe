"""Exit statuses of the ``layerpeek`` command, as grep and diff give them.

A script tests ``$?`` the way it tests grep's: 0 when the answer is there, 1 when the question
was fine but the answer is "no" (no match, no such path, the images differ), 2 when the command
line itself is wrong (argparse's own status), and 3 when something stood in the way of a whole
answer (a registry, the network, a damaged layer): a status apart from 1, so "nothing found"
never hides "could not look".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the answer models load with the command, not with --help
    from layerpeek.core.models import LayerProblem


class Exit(IntEnum):
    """The statuses ``layerpeek`` exits with (130 on Ctrl-C, as shells expect, besides)."""

    FOUND = 0
    NOTHING = 1
    USAGE = 2
    ERROR = 3


EPILOG = """\
exit status:
  0  found: the answer is complete (for diff: the images have the same files)
  1  nothing found: find matched nothing, trace found no layer with the path,
     or diff found differences
  2  usage: the command line is wrong
  3  error: a registry, the network or the image stood in the way; an incomplete
     answer (a damaged layer) is printed, then named on stderr
"""


class UsageError(Exception):
    """A command line argparse accepts but the command cannot (``--limit 0``): exit 2."""


@dataclass
class Outcome:
    """What a command answered: whether it found anything, and the layers it could not read."""

    found: bool = True
    problems: list[LayerProblem] = field(default_factory=list)

    @property
    def status(self) -> Exit:
        """An incomplete answer is an error even when it found something: it may miss more."""
        if self.problems:
            return Exit.ERROR
        return Exit.FOUND if self.found else Exit.NOTHING
