"""``python -m layerpeek.cli``: the same as the ``layerpeek`` command."""

from layerpeek.cli.main import entry

entry()
