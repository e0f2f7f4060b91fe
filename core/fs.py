"""The merged filesystem of an image: OCI overlay rules applied to per-layer listings.

Pure: it reads listings (anything with the TarEntry fields) and does no I/O, so the rules are
tested on plain lists and the service feeds it whatever index or scan it has.

The rules (OCI image spec, "Applying Changesets"): a layer's ``.wh.NAME`` deletes NAME and
everything under it from the lower layers, ``.wh..wh..opq`` hides every lower entry of its
directory, and a later entry replaces an earlier one at the same path, a directory replacing a
file or a file replacing a directory (and its whole subtree). Whiteouts apply only to lower
layers, so each layer's deletions run before its additions. Hard links resolve to the file
they name at the moment the layer creates them, as an unpacker's ``link(2)`` does. A path
whose directories include a symlink is written where the link leads (``lib/x`` lands in
``usr/lib/x`` when ``lib -> usr/lib``), as umoci's and containerd's secure joins do; more than
40 links on the way is a loop, reported and skipped.

Hostile input: paths are never normalised. A name with an empty, ``.`` or ``..`` component is
kept literally at the top of the tree (it gets no implicit parents and cannot whiteout
anything) and reported as irregular. Subtrees are removed with an explicit stack, so deep
trees cannot exhaust the recursion limit, and each path is removed at most once per addition,
so the work stays proportional to the number of entries however many whiteouts there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Action = Literal["added", "changed", "deleted", "hidden", "displaced"]

_OPAQUE = ".wh..wh..opq"
_WHITEOUT = ".wh."
_MARKERS = frozenset({"whiteout", "opaque"})
_LINKED = frozenset({"file", "hardlink"})


class EntryLike(Protocol):
    """What a listing entry must have: the fields of TarEntry (and of EntryInfo)."""

    @property
    def path(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mode(self) -> int: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...
    @property
    def mtime(self) -> int: ...
    @property
    def link(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Node:
    """One path of the merged filesystem and the layer that provides it.

    ``size`` of a hard link is the size of the file it resolves to; ``target`` and
    ``target_layer`` name that file's path and layer ("" and -1 for anything else).
    ``implicit`` marks a parent directory no layer lists. ``shipped_as`` is the name in the
    layer's tar when a symlinked directory placed it elsewhere ("" when it is ``path``): the
    name to read that layer's copy by.
    """

    path: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int
    link: str
    layer: int
    target: str = ""
    target_layer: int = -1
    implicit: bool = False
    shipped_as: str = ""

    @property
    def layer_path(self) -> str:
        """The name this entry has in its own layer."""
        return self.shipped_as or self.path


@dataclass(frozen=True, slots=True)
class Event:
    """One step of a path's story: what ``layer`` did to it.

    ``added``: the path appears; ``changed``: a later entry replaces it (its type may differ);
    ``deleted``: a whiteout for it or a directory above; ``hidden``: an opaque directory above;
    ``displaced``: a directory above was replaced by a non-directory. ``cause`` names the
    whiteout, opaque marker or replacing path for the last three. ``shipped_as`` is the
    layer's own name for an entry a symlinked directory placed at this path.
    """

    layer: int
    action: Action
    type: str
    size: int
    cause: str = ""
    shipped_as: str = ""


@dataclass(frozen=True, slots=True)
class Removed:
    """A non-directory a lower layer still ships but a later layer deleted or replaced."""

    node: Node
    layer: int  # the layer that removed it
    action: Action  # changed (overwritten), deleted, hidden or displaced
    cause: str


@dataclass(frozen=True, slots=True)
class Irregular:
    """An entry kept literally because normal overlay handling would be unsafe or impossible."""

    path: str
    layer: int
    reason: str


def irregular_name(path: str) -> bool:
    """Empty, ``.`` or ``..`` components: never resolved against a parent, only reported."""
    if not path or "//" in path or path[0] == "/" or path[-1] == "/":
        return True
    return "." in path and any(part in (".", "..") for part in path.split("/"))


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


@dataclass
class Overlay:
    """Apply layers bottom-up with :meth:`apply`; then read the merged view and the history."""

    nodes: dict[str, Node] = field(default_factory=dict)
    history: dict[str, list[Event]] = field(default_factory=dict)
    removed: list[Removed] = field(default_factory=list)
    irregular: list[Irregular] = field(default_factory=list)
    placed: dict[tuple[int, str], str] = field(default_factory=dict)
    layers: int = 0
    _children: dict[str, set[str]] = field(default_factory=dict)

    def apply(self, layer: int, entries: Iterable[EntryLike]) -> None:
        """Apply one layer's entries (in tar order) on top of everything applied so far."""
        listed = list(entries)
        for entry in listed:
            if entry.type == "opaque":
                self._opaque(layer, entry.path)
            elif entry.type == "whiteout":
                self._whiteout(layer, entry.path)
        for entry in listed:
            if entry.type not in _MARKERS and entry.path not in ("", "."):
                self._add(layer, entry)
        self.layers = max(self.layers, layer + 1)

    def listing(self) -> list[Node]:
        """The merged filesystem, sorted by path."""
        return [self.nodes[p] for p in sorted(self.nodes)]

    def unreachable(self) -> list[Removed]:
        """Removed entries no merged hard link still reaches: bytes shipped for nothing."""
        linked = {(n.target, n.target_layer) for n in self.nodes.values() if n.type == "hardlink"}
        return [r for r in self.removed if (r.node.path, r.node.layer) not in linked]

    def story(self, path: str) -> list[Event]:
        """Everything the layers did to ``path``, bottom-up."""
        return list(self.history.get(path, ()))

    def resolve(self, path: str) -> str:
        """A user's path as the merged filesystem files it: symlinked directories followed
        (``lib/x`` is ``usr/lib/x`` when ``lib -> usr/lib``); a loop leaves it as given."""
        if irregular_name(path) or path in self.history:
            return path
        return self._through_links(path) or path

    # -- deletions ---------------------------------------------------------------------------

    def _opaque(self, layer: int, marker: str) -> None:
        placed = None if irregular_name(marker) else self._placed(layer, marker)
        if placed is None:
            self.irregular.append(Irregular(marker, layer, "opaque marker in an irregular path"))
            return
        for child in sorted(self._children.get(_parent(placed), ())):
            self._remove_tree(child, layer, "hidden", marker)

    def _whiteout(self, layer: int, marker: str) -> None:
        directory, _, name = marker.rpartition("/")
        target_name = name.removeprefix(_WHITEOUT)
        target = f"{directory}/{target_name}" if directory else target_name
        placed = None if irregular_name(target) else self._placed(layer, target)
        if placed is None:
            # `.wh..` would otherwise delete the directory holding it.
            self.irregular.append(Irregular(marker, layer, "whiteout of an irregular name"))
            return
        if target_name.startswith(_WHITEOUT):
            return  # aufs metadata such as .wh..wh.plnk, not a deletion
        target = placed
        if target in self.nodes:
            self._remove_tree(target, layer, "deleted", marker)

    def _remove_tree(self, top: str, layer: int, action: Action, cause: str) -> None:
        """Remove ``top`` and everything under it, recording each path's last event."""
        self._children.get(self._parent_key(top), set()).discard(top)
        stack = [top]
        while stack:
            path = stack.pop()
            node = self.nodes.pop(path, None)
            if node is None:
                continue
            stack.extend(self._children.pop(path, ()))
            self._record(path, Event(layer, action, node.type, node.size, cause))
            if node.type != "dir":
                self.removed.append(Removed(node, layer, action, cause))

    # -- additions ---------------------------------------------------------------------------

    def _add(self, layer: int, entry: EntryLike) -> None:
        path: str | None = entry.path
        if irregular_name(entry.path):
            self.irregular.append(Irregular(path, layer, "name has an empty, . or .. component"))
        else:
            path = self._placed(layer, entry.path)
            if path is None:
                return
            if path != entry.path:
                self.placed[(layer, entry.path)] = path
            self._make_parents(layer, path)
        node = self._node(layer, path, entry)
        old = self.nodes.get(path)
        if old is None:
            self._record(path, Event(layer, "added", node.type, node.size, "", node.shipped_as))
        else:
            self._replace(layer, old, node)
        self.nodes[path] = node
        self._children.setdefault(self._parent_key(path), set()).add(path)

    def _replace(self, layer: int, old: Node, new: Node) -> None:
        if old.type == "dir" and new.type == "dir":
            if (old.mode, old.uid, old.gid) != (new.mode, new.uid, new.gid):
                self._record(new.path, Event(layer, "changed", "dir", 0, "", new.shipped_as))
            return
        if old.type == "dir":
            for child in sorted(self._children.pop(old.path, ())):
                self._remove_tree(child, layer, "displaced", new.path)
        else:
            self.removed.append(Removed(old, layer, "changed", new.path))
        self._record(new.path, Event(layer, "changed", new.type, new.size, "", new.shipped_as))

    def _make_parents(self, layer: int, path: str) -> None:
        """Create missing ancestors as directories (what unpackers' MkdirAll does); an ancestor
        that is not a directory is replaced, as extracting the child would have to."""
        missing: list[str] = []
        parent = _parent(path)
        while parent and self.nodes.get(parent, _NO_DIR).type != "dir":
            missing.append(parent)
            parent = _parent(parent)
        for directory in reversed(missing):
            node = Node(directory, "dir", 0, 0o755, 0, 0, 0, "", layer, implicit=True)
            old = self.nodes.get(directory)
            if old is None:
                self._record(directory, Event(layer, "added", "dir", 0))
            else:
                self._replace(layer, old, node)
            self.nodes[directory] = node
            self._children.setdefault(_parent(directory), set()).add(directory)

    def _node(self, layer: int, path: str, entry: EntryLike) -> Node:
        size, target, target_layer = entry.size, "", -1
        if entry.type == "hardlink":
            size, target, target_layer = self._resolve(layer, entry)
        return Node(
            path,
            entry.type,
            size,
            entry.mode,
            entry.uid,
            entry.gid,
            entry.mtime,
            entry.link,
            layer,
            target,
            target_layer,
            shipped_as="" if path == entry.path else entry.path,
        )

    def _resolve(self, layer: int, entry: EntryLike) -> tuple[int, str, int]:
        """A hard link shares the inode its target has now; later changes to the target's path
        do not affect it. A missing target or a non-file cannot be linked: reported."""
        link = entry.link if irregular_name(entry.link) else self._through_links(entry.link)
        target = self.nodes.get(link) if link is not None else None
        if target is None or target.type not in _LINKED:
            self.irregular.append(
                Irregular(entry.path, layer, f"hard link to missing or non-file {entry.link!r}")
            )
            return 0, "", -1
        if target.type == "hardlink":
            return target.size, target.target, target.target_layer
        return target.size, target.path, target.layer

    def _placed(self, layer: int, path: str) -> str | None:
        """Where an unpacker writes ``path``; a symlink loop is reported and gives None."""
        placed = self._through_links(path)
        if placed is None:
            self.irregular.append(Irregular(path, layer, "symlink loop in its directories"))
        return placed

    def _through_links(self, path: str) -> str | None:
        """``path`` with symlinked directories followed inside the image, as unpackers'
        secure joins do (``..`` stops at the root, absolute targets start from it); the
        last component is not followed. None after _MAX_HOPS links: a loop."""
        parent, _, name = path.rpartition("/")
        if not parent or self.nodes.get(parent, _NO_DIR).type == "dir":
            return path  # every stored path has directories as ancestors: nothing to follow
        pending, resolved, hops = parent.split("/")[::-1], [], 0
        while pending:
            part = pending.pop()
            if part == "..":
                resolved = resolved[:-1]
                continue
            node = self.nodes.get("/".join([*resolved, part])) if part not in ("", ".") else None
            if node is not None and node.type == "symlink":
                hops += 1
                if hops > _MAX_HOPS:
                    return None
                resolved = [] if node.link.startswith("/") else resolved
                pending.extend(node.link.split("/")[::-1])
            elif part not in ("", "."):
                resolved.append(part)
        return "/".join([*resolved, name])

    def _record(self, path: str, event: Event) -> None:
        self.history.setdefault(path, []).append(event)

    def _parent_key(self, path: str) -> str:
        """Irregular names hang off the root so root-level rules (an opaque ``/``) reach them."""
        return "" if irregular_name(path) else _parent(path)


_NO_DIR = Node("", "", 0, 0, 0, 0, 0, "", -1)
_MAX_HOPS = 40  # Linux's MAXSYMLINKS: more links than this while resolving is a loop


def merge(listings: Sequence[Iterable[EntryLike]]) -> Overlay:
    """Apply every layer's listing bottom-up."""
    overlay = Overlay()
    for index, entries in enumerate(listings):
        overlay.apply(index, entries)
    return overlay
