"""The ``layerpeek`` command as its console script runs it, then its peak RSS on stderr.

``python bench/cli.py ARGS…`` runs ``layerpeek ARGS…`` in this process and writes one last
line to stderr, ``{"rss_mb": …}``: VmHWM, the peak of this process image (a parent's
``ru_maxrss`` would count the peak of the bench process it was forked from). The parent
times the whole process, start-up and output included.
"""

import json
import sys
from pathlib import Path

from layerpeek.cli.main import main

try:
    from layerpeek.cli.main import end_process
except ImportError:  # an older tree (``run.py --before``), whose command ended with sys.exit
    end_process = sys.exit


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.write(json.dumps({"rss_mb": _peak_mb()}) + "\n")
    end_process(status)
