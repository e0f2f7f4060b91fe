"""Which layer installed each package of a database that holds many (dpkg's status, apk's
installed, the rpmdb): the database file's own layer only says which layer last wrote it.

Every layer that changed the file ships its own copy; the merged view keeps the lower ones
as removed ("changed") entries. Reading them from the top down, a package was installed, at
the version it has now, by the lowest layer from which every copy lists it unchanged. A
deletion of the file breaks the chain: copies below it are not the same database."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

from layerpeek.core.fs.overlay import Node, Overlay

MAX_COPIES = 16
"""Lower copies of one database read at most; past them the lowest read answers."""


def lower_copies(overlay: Overlay, node: Node) -> list[Node]:
    """The copies of ``node``'s file that lower layers ship, top first, down to the first
    deletion or replacement by something else (at most ``MAX_COPIES``)."""
    below = [
        r
        for r in overlay.removed
        if r.node.path == node.path and r.node.layer < node.layer and r.node.type == "file"
    ]
    below.sort(key=lambda r: r.node.layer, reverse=True)
    chain: list[Node] = []
    above = node.layer
    for removed in below:
        if removed.action != "changed" or removed.layer != above or len(chain) == MAX_COPIES:
            break
        chain.append(removed.node)
        above = removed.node.layer
    return chain


def install_layers(
    top: int, keys: Iterable[Hashable], copies: Sequence[tuple[int, set[Hashable]]]
) -> dict[Hashable, int]:
    """For each package key of the top copy (written by layer ``top``), the lowest layer from
    which each copy (``(layer, keys)``, top first) lists it."""
    layers = {}
    for key in keys:
        layer = top
        for copy_layer, listed in copies:
            if key not in listed:
                break
            layer = copy_layer
        layers[key] = layer
    return layers
