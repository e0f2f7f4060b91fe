"""The merged filesystem as tar members: what ``layerpeek export`` writes, in the order
containerd would extract it.

The members are the merged view's nodes (whiteouts and opaque directories already applied,
so the archive holds exactly what ``ls --merged`` shows), in the order containerd creates
them when it applies the layers: layer by layer, each in its tar's order. So a file comes
after the file it is a hard link to, as in the layer, and an extractor (containerd's, GNU
tar, umoci's) recreates the tree in one pass. A directory no layer lists comes right before
the first entry under it, with the mode the view gives it (0755 root). Files that share an
inode (a hard link and the file it names, as the merged view resolves them) stay linked: the
first of them carries the bytes, the others are hard links to it; a link whose file a later
layer replaced carries the bytes it was made with.

Pure: it plans members and writes headers; the caller reads the bytes of each member that
carries data. Headers are PAX, so long names, large ids and undecodable bytes (kept as
surrogate escapes by the scanner) come out as they went in.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from layerpeek.core.fs.overlay import Node, irregular_name

BLOCK = tarfile.BLOCKSIZE
END = bytes(2 * BLOCK)
"""The two zero blocks that end a tar archive."""

_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


@dataclass(frozen=True)
class Member:
    """One tar member: ``node`` as the merged view shows it; ``linked_to`` the earlier
    member's path when it is a hard link in the archive; ``data`` the file node whose bytes
    follow the header (None: no bytes)."""

    node: Node
    linked_to: str = ""
    data: Node | None = None

    @property
    def size(self) -> int:
        return self.data.size if self.data is not None else 0


def subtree(nodes: Sequence[Node], top: str) -> Sequence[Node]:
    """``top`` and everything under it ("" for the whole filesystem). The nodes are in path
    order by component, so a subtree is one run of them, right after its directory."""
    if not top:
        return nodes
    start = next((at for at, node in enumerate(nodes) if node.path == top), None)
    if start is None:
        return []
    below = top + "/"
    end = start + 1
    while end < len(nodes) and nodes[end].path.startswith(below):
        end += 1
    return nodes[start:end]


def extraction_order(nodes: Sequence[Node]) -> list[Node]:
    """``nodes`` in the order containerd creates them: by layer, then by place in the
    layer's tar; each implicit directory just before the first entry under it.

    Names no extraction may take (``../etc/x``, ``x/../y``, ``/abs``: the merged view lists
    them as the layer wrote them, ``overlay.irregular_name``) are left out: in an archive
    they would write outside, or elsewhere than, the directory it is extracted into."""
    implicit = {node.path: node for node in nodes if node.implicit}
    ordered: list[Node] = []
    regular = (n for n in nodes if not n.implicit and not irregular_name(n.path))
    for node in sorted(regular, key=_created):
        for parent in _parents(node.path):
            if parent in implicit:
                ordered.append(implicit.pop(parent))
        ordered.append(node)
    return ordered + list(implicit.values())


def _created(node: Node) -> tuple[int, int]:
    return node.layer, node.position


def _parents(path: str) -> Iterator[str]:
    """``a``, ``a/b`` for ``a/b/c``: the directories above a path, from the top."""
    at = path.find("/")
    while at > 0:
        yield path[:at]
        at = path.find("/", at + 1)


def members(nodes: Sequence[Node]) -> Iterator[Member]:
    """The members for ``nodes``, in their order. A hard link whose file the view does not
    resolve is left out: its name (any text a layer wrote) is nothing the archive holds, and
    an extractor would link to whatever that name reaches where it runs."""
    first: dict[int, str] = {}  # id of a file node -> the archive path that carries its bytes
    for node in nodes:
        file = node.linked if node.type == "hardlink" else node
        if file is None:
            continue
        if node.type not in ("file", "hardlink"):
            yield Member(node)
        elif id(file) in first:
            yield Member(node, first[id(file)])
        else:
            first[id(file)] = node.path
            yield Member(node, data=file)


def header(member: Member) -> bytes:
    """The member's PAX header. An implicit directory (no layer lists it) gets time 0, the
    mode and owner the view gives it (0755 root)."""
    node = member.node
    info = tarfile.TarInfo(node.path)
    if member.linked_to:
        info.type, info.linkname = tarfile.LNKTYPE, member.linked_to
    elif member.data is not None:
        info.type, info.size = tarfile.REGTYPE, member.size
    else:
        info.type, info.linkname = _TYPES.get(node.type, tarfile.REGTYPE), node.link
    info.mode = node.mode & 0o7777
    info.uid, info.gid = node.uid, node.gid
    info.mtime = node.mtime or 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> bytes:
    """Zeros up to the next block after ``size`` bytes of data."""
    return bytes(-size % BLOCK)
