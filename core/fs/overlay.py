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
40 links on the way is a loop, reported and skipped. A layer that holds a path twice is
extracted with the last copy, so that is the one the view keeps, each node saying which
entry of its layer it is (``Node.position``).

This is the one place paths are resolved: reads, sizes and download links find a path with
``Overlay.lookup``, which follows links as a process chrooted into the image would, so what
a listing shows is what a read returns.

Hostile input: paths are never normalised. A name with an empty, ``.`` or ``..`` component is
kept literally at the top of the tree (it gets no implicit parents and cannot whiteout
anything) and reported as irregular. Subtrees are removed with an explicit stack, so deep
trees cannot exhaust the recursion limit, and each path is removed at most once per addition,
so the work stays proportional to the number of entries however many whiteouts there are.
The tree keeps one name segment per path with a link to its parent, never a full path per
ancestor, so building it costs time and memory linear in the listing's bytes (a 64 KiB name
of ``a/a/…`` has 32,767 implicit parents: ~10 MB, where full strings took 2.2 GB); full paths
are joined only for the nodes handed out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import islice
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
    @property
    def cut(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Node:
    """One path of the merged filesystem and the layer that provides it.

    ``size`` of a hard link is the size of the file it resolves to, and ``linked`` is that
    file's node as it was when the link was made (None for anything else): its bytes are the
    link's. ``implicit`` marks a parent directory no layer lists. ``shipped_as`` is the name
    in the layer's tar when a symlinked directory placed it elsewhere ("" when it is
    ``path``): the name to read that layer's copy by. ``position`` is the entry's place in
    its layer's listing (-1 for an implicit directory): when a layer holds a path twice, it
    says which copy this is, so a read takes exactly these bytes.
    """

    path: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int | None  # None: an implicit directory, whose time no layer gives
    link: str
    layer: int
    linked: Node | None = None
    implicit: bool = False
    shipped_as: str = ""
    position: int = -1

    @property
    def target(self) -> str:
        """The merged path of the file a hard link shares ("" for anything else)."""
        return self.linked.path if self.linked is not None else ""

    @property
    def target_layer(self) -> int:
        """The layer of the file a hard link shares (-1 for anything else)."""
        return self.linked.layer if self.linked is not None else -1

    @property
    def layer_path(self) -> str:
        """The name this entry has in its own layer."""
        return self.shipped_as or self.path

    @property
    def cut(self) -> bool:
        """Never: an entry whose name the scanner cut takes no part in the merged view."""
        return False


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
class Lookup:
    """What :meth:`Overlay.lookup` found for a path.

    ``path``: the merged path reached, links followed ("" for the root directory; for a
    missing path, as far as it was walked and the rest as given). ``node``: what is there
    (None for nothing, or the root). ``links``: the merged paths of the symlinks followed,
    in order. ``loop``: more than 40 links were followed (the last is ``path``).
    """

    path: str
    node: Node | None
    links: tuple[str, ...] = ()
    loop: bool = False


@dataclass(frozen=True, slots=True)
class Removed:
    """A non-directory a lower layer still ships but a later layer deleted or replaced."""

    node: Node
    layer: int  # the layer that removed it
    action: Action  # changed (overwritten), deleted, hidden or displaced
    cause: str


CUT_REASON = "name longer than 4096 bytes, listed cut: no runtime extracts it"


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


class _Name:
    """One name in the tree of every path the layers have named, present now or not.

    A name keeps its own segment and a link to its parent, never its full path: a path of
    depth d has d ancestors, and a full string per ancestor would cost d² bytes (a 64 KiB
    path of ``a/a/…``, 2.2 GB). Full paths are joined only when a node is handed out.
    ``node`` is the entry present at this path (None for an implicit directory or nothing);
    ``implicit`` is the layer of an implicit directory present here (-1 for none). Names are
    never dropped, so a deleted path keeps its story.
    """

    __slots__ = ("events", "implicit", "live", "name", "names", "node", "parent")

    def __init__(self, name: str, parent: _Name | None) -> None:
        self.name = name
        self.parent = parent
        self.names: dict[str, _Name] | None = None  # every child name ever seen
        self.live: dict[str, _Name] | None = None  # the children present now
        self.node: Node | None = None
        self.implicit = -1
        self.events: Event | list[Event] | None = None  # one event needs no list

    @property
    def present(self) -> bool:
        return self.node is not None or self.implicit >= 0

    @property
    def type(self) -> str:
        """The present entry's type ("" when nothing is here)."""
        if self.implicit >= 0:
            return "dir"
        return self.node.type if self.node is not None else ""

    def child(self, name: str) -> _Name:
        """The child called ``name``, made on first use."""
        if self.names is None:
            self.names = {}
        found = self.names.get(name)
        if found is None:
            found = self.names[name] = _Name(name, self)
        return found


class Overlay:
    """Apply layers bottom-up with :meth:`apply`; then read the merged view and the history.

    Built in time and memory linear in the listings: every path is a chain of :class:`_Name`
    links, so an implicit ancestor costs its own segment, not its full path.
    """

    def __init__(self) -> None:
        self.removed: list[Removed] = []
        self.irregular: list[Irregular] = []
        self.placed: dict[tuple[int, str], str] = {}
        self.layers = 0
        self._root = _Name("", None)
        self._dirs: dict[str, _Name] = {"": self._root}  # directory strings already walked
        self._count = 0

    def apply(self, layer: int, entries: Iterable[EntryLike]) -> None:
        """Apply one layer's entries (in tar order) on top of everything applied so far.

        An entry whose name the scanner cut (longer than 4096 bytes) takes no part: no runtime
        can create it, and its cut name is not the path it names. It is reported irregular."""
        listed = []
        for position, entry in enumerate(entries):
            if entry.cut:
                self.irregular.append(Irregular(entry.path, layer, CUT_REASON))
            else:
                listed.append((position, entry))
        for _, entry in listed:
            if entry.type == "opaque":
                self._opaque(layer, entry.path)
            elif entry.type == "whiteout":
                self._whiteout(layer, entry.path)
        for position, entry in listed:
            if entry.type not in _MARKERS and entry.path not in ("", "."):
                self._add(layer, entry, position)
        self.layers = max(self.layers, layer + 1)

    # -- reading the merged view ---------------------------------------------------------------

    @property
    def nodes(self) -> Mapping[str, Node]:
        """The merged filesystem by path (iterated in path order)."""
        return _Nodes(self)

    def __len__(self) -> int:
        return self._count

    def listing(self, start: int = 0, stop: int | None = None) -> list[Node]:
        """The merged filesystem sorted by path, or its ``[start:stop]`` slice: only the
        slice's full paths are built."""
        return [self._node(n, above) for n, above in islice(self._walk(), start, stop)]

    def iter_nodes(self) -> Iterator[Node]:
        """The merged filesystem sorted by path, one node at a time (memory stays linear
        even when every path is deep)."""
        return (self._node(n, above) for n, above in self._walk())

    def unreachable(self) -> list[Removed]:
        """Removed entries no merged hard link still reaches: bytes shipped for nothing."""
        linked = {(n.target, n.target_layer) for n in self._entries() if n.type == "hardlink"}
        return [r for r in self.removed if (r.node.path, r.node.layer) not in linked]

    def files(self) -> Iterator[Node]:
        """The merged regular files, in no particular order."""
        return (n for n in self._entries() if n.type == "file")

    def story(self, path: str) -> list[Event]:
        """Everything the layers did to ``path``, bottom-up."""
        name = self._find(path)
        events = name.events if name is not None else None
        if events is None:
            return []
        return [events] if isinstance(events, Event) else list(events)

    def get(self, path: str) -> Node | None:
        """The merged node at ``path``, None when nothing is there."""
        name = self._find(path)
        if name is None or not name.present:
            return None
        return self._node(name, None)

    def resolve(self, path: str) -> str:
        """A user's path as the merged filesystem files it: symlinked directories followed
        (``lib/x`` is ``usr/lib/x`` when ``lib -> usr/lib``); a loop leaves it as given."""
        if irregular_name(path):
            return path
        name = self._find(path)
        if name is not None and name.events is not None:
            return path
        return self._through_links(path) or path

    def lookup(self, path: str, follow: bool = True) -> Lookup:
        """What ``path`` names, found the way a process chrooted into the merged root opens
        it: symlinks followed in every directory and, with ``follow``, in the last component
        (else that link is itself the answer); an absolute target starts again at the root;
        ``..`` goes up, and stops at the root. More than 40 links is a loop (Linux's
        ELOOP), reported as ``loop``. A path the layers name literally (a hostile ``x/../y``,
        kept at the top of the tree) is found as it is.

        Walks the present names, so it costs the path's components and the links' targets,
        never the size of the tree."""
        literal = self._root.live.get(path) if self._root.live and irregular_name(path) else None
        if literal is not None:
            return Lookup(path, self._node(literal, None))
        pending = path.split("/")[::-1]
        walked: list[_Name] = []  # the directories entered, root first (the root not held)
        links: list[str] = []
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                walked = walked[:-1]
                continue
            here = walked[-1] if walked else self._root
            below = here.live.get(part) if here.live and here.type in ("dir", "") else None
            if below is None:  # nothing there, or ``here`` is no directory
                rest = "/".join([part, *reversed(pending)])
                return Lookup(_joined(walked, rest), None, tuple(links))
            node = below.node
            if node is not None and node.type == "symlink" and (pending or follow):
                links.append(_path_of(below))
                if len(links) > MAX_HOPS or not node.link:
                    return Lookup(links[-1], None, tuple(links), loop=bool(node.link))
                walked = [] if node.link.startswith("/") else walked
                pending.extend(node.link.split("/")[::-1])
                continue
            walked.append(below)
        if not walked:
            return Lookup("", None, tuple(links))  # the root directory
        return Lookup(_path_of(walked[-1]), self._node(walked[-1], None), tuple(links))

    def _node(self, name: _Name, above: list[str] | None) -> Node:
        """The public node of a present name; ``above``: the names of its directories, when
        the caller walks the tree and has them at hand."""
        if name.node is not None:
            return name.node
        path = "/".join([*above, name.name]) if above is not None else _path_of(name)
        return Node(path, "dir", 0, 0o755, 0, 0, None, "", name.implicit, implicit=True)

    def _entries(self) -> Iterator[Node]:
        """The explicit nodes present now, in no particular order (no path is built)."""
        stack = [self._root]
        while stack:
            name = stack.pop()
            if name.node is not None:
                yield name.node
            if name.live:
                stack.extend(name.live.values())

    def _walk(self) -> Iterator[tuple[_Name, list[str]]]:
        """Present names in path order, each with the names of its directories (one list,
        changed as the walk goes on: read it before the next step).

        Path order compares paths component by component, as ``ls -R`` and ``find -s`` show
        a tree: a directory's whole subtree comes right after it, before its next sibling
        (``doc``, ``doc/x``, ``doc-base``), where comparing full strings would put
        ``doc-base`` between ``doc`` and ``doc/x`` ('-' sorts before '/'). It is a
        depth-first walk over siblings ordered by name. Literal names hang off the root;
        each is ordered where its text falls."""
        strays = self._strays()
        above: list[str] = []
        stack = [iter(_ordered(self._root, strays))]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                if stack:
                    above.pop()
            elif item[1]:
                above.append(item[0].name)
                stack.append(iter(_ordered(item[0], strays)))
            else:
                yield item[0], above

    def _strays(self) -> dict[_Name, list[tuple[str, _Name]]]:
        """Where each literal (irregular) name falls in path order: the deepest directory its
        text runs through, with the rest of the text as its sort key there."""
        strays: dict[_Name, list[tuple[str, _Name]]] = {}
        for literal in (self._root.live or {}).values():
            if not irregular_name(literal.name):
                continue
            where, rest = self._root, literal.name
            while True:
                head, slash, tail = rest.partition("/")
                below = where.live.get(head) if slash and where.live else None
                if below is None or not below.live:
                    break
                where, rest = below, tail
            strays.setdefault(where, []).append((rest, literal))
        return strays

    # -- finding names -----------------------------------------------------------------------

    def _find(self, path: str) -> _Name | None:
        """The name for ``path`` when any layer has named it (literal names at the root)."""
        if irregular_name(path):
            return (self._root.names or {}).get(path)
        directory, _, leaf = path.rpartition("/")
        parent = self._dir(directory, create=False)
        return (parent.names or {}).get(leaf) if parent is not None else None

    def _dir(self, path: str, create: bool) -> _Name | None:
        """The name of the regular path ``path`` (the root for ""), walked once per string."""
        found = self._dirs.get(path)
        if found is not None:
            return found
        here = self._root
        for part in path.split("/"):
            if create:
                here = here.child(part)
            else:
                below = here.names.get(part) if here.names else None
                if below is None:
                    return None
                here = below
        self._dirs[path] = here
        return here

    def _present(self, path: str) -> _Name | None:
        name = self._find(path)
        return name if name is not None and name.present else None

    # -- deletions ---------------------------------------------------------------------------

    def _opaque(self, layer: int, marker: str) -> None:
        placed = None if irregular_name(marker) else self._placed(layer, marker)
        if placed is None:
            self.irregular.append(Irregular(marker, layer, "opaque marker in an irregular path"))
            return
        directory = self._dir(_parent(placed), create=False)
        if directory is None or not directory.live:
            return
        for child in sorted(directory.live.values(), key=_by_name):
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
        found = self._present(placed)
        if found is not None:
            self._remove_tree(found, layer, "deleted", marker)

    def _remove_tree(self, top: _Name, layer: int, action: Action, cause: str) -> None:
        """Remove ``top`` and everything under it, recording each path's last event."""
        if top.parent is not None and top.parent.live:
            top.parent.live.pop(top.name, None)
        stack = [top]
        while stack:
            name = stack.pop()
            if not name.present:
                continue
            node = name.node
            if node is None:
                _record(name, Event(layer, action, "dir", 0, cause))
            else:
                _record(name, Event(layer, action, node.type, node.size, cause))
                if node.type != "dir":
                    self.removed.append(Removed(node, layer, action, cause))
            name.node, name.implicit = None, -1
            self._count -= 1
            if name.live:
                stack.extend(name.live.values())
            name.live = None

    # -- additions ---------------------------------------------------------------------------

    def _add(self, layer: int, entry: EntryLike, position: int) -> None:
        path = entry.path
        if irregular_name(entry.path):
            self.irregular.append(Irregular(path, layer, "name has an empty, . or .. component"))
            name = self._root.child(entry.path)
        else:
            placed = self._placed(layer, entry.path)
            if placed is None:
                return
            path = placed
            if path != entry.path:
                self.placed[(layer, entry.path)] = path
            directory, _, leaf = path.rpartition("/")
            parent = self._dir(directory, create=True)
            assert parent is not None
            self._make_parents(layer, parent)
            name = parent.child(leaf)
        node = self._new_node(layer, path, entry, position)
        if not name.present:
            _record(name, Event(layer, "added", node.type, node.size, "", node.shipped_as))
            self._count += 1
        else:
            self._replace(layer, name, node)
        name.node, name.implicit = node, -1
        self._attach(name)

    def _attach(self, name: _Name) -> None:
        parent = name.parent
        assert parent is not None
        if parent.live is None:
            parent.live = {}
        parent.live[name.name] = name

    def _replace(self, layer: int, name: _Name, new: Node | None) -> None:
        """A present ``name`` gets ``new`` (None: an implicit directory)."""
        old = name.node
        new_type = new.type if new is not None else "dir"
        shipped_as = new.shipped_as if new is not None else ""
        if name.type == "dir" and new_type == "dir":
            if _owner(old) != _owner(new):
                _record(name, Event(layer, "changed", "dir", 0, "", shipped_as))
            return
        if name.type == "dir":
            assert new is not None
            for child in sorted((name.live or {}).values(), key=_by_name):
                self._remove_tree(child, layer, "displaced", new.path)
            name.live = None
        else:
            assert old is not None
            cause = new.path if new is not None else old.path  # the same path either way
            self.removed.append(Removed(old, layer, "changed", cause))
        size = new.size if new is not None else 0
        _record(name, Event(layer, "changed", new_type, size, "", shipped_as))

    def _make_parents(self, layer: int, parent: _Name) -> None:
        """Create missing ancestors as directories (what unpackers' MkdirAll does); an ancestor
        that is not a directory is replaced, as extracting the child would have to."""
        missing: list[_Name] = []
        here: _Name | None = parent
        while here is not None and here is not self._root and here.type != "dir":
            missing.append(here)
            here = here.parent
        for directory in reversed(missing):
            if not directory.present:
                _record(directory, _implicit_added(layer))
                self._count += 1
            else:
                self._replace(layer, directory, None)
            directory.node, directory.implicit = None, layer
            self._attach(directory)

    def _new_node(self, layer: int, path: str, entry: EntryLike, position: int) -> Node:
        linked, size = None, entry.size
        if entry.type == "hardlink":
            linked = self._linked(layer, entry)
            size = linked.size if linked is not None else 0
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
            linked,
            shipped_as="" if path == entry.path else entry.path,
            position=position,
        )

    def _linked(self, layer: int, entry: EntryLike) -> Node | None:
        """The regular file a hard link shares: the node its target has now, since later
        changes to the target's path do not affect the inode. A missing target or a non-file
        cannot be linked: reported, and None."""
        link = entry.link if irregular_name(entry.link) else self._through_links(entry.link)
        found = self._present(link) if link is not None else None
        target = found.node if found is not None else None
        if target is None or target.type not in _LINKED:
            self.irregular.append(
                Irregular(entry.path, layer, f"hard link to missing or non-file {entry.link!r}")
            )
            return None
        return target.linked if target.type == "hardlink" else target

    def _placed(self, layer: int, path: str) -> str | None:
        """Where an unpacker writes ``path``; a symlink loop is reported and gives None."""
        placed = self._through_links(path)
        if placed is None:
            self.irregular.append(Irregular(path, layer, "symlink loop in its directories"))
        return placed

    def _through_links(self, path: str) -> str | None:
        """``path`` with symlinked directories followed inside the image, as unpackers'
        secure joins do (``..`` stops at the root, absolute targets start from it); the
        last component is not followed. None after MAX_HOPS links: a loop.

        Walks names, not strings, so a deep path costs its length, not its length squared."""
        parent, _, leaf = path.rpartition("/")
        if not parent:
            return path
        directory = self._dir(parent, create=False)
        if directory is not None and directory.type == "dir":
            return path  # every present path has directories as ancestors: nothing to follow
        pending = parent.split("/")[::-1]
        resolved: list[tuple[str, _Name | None]] = []  # each part, and its name when present
        hops = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                resolved = resolved[:-1]
                continue
            here = resolved[-1][1] if resolved else self._root
            below = here.names.get(part) if here is not None and here.names else None
            if below is not None and not below.present:
                below = None
            if below is not None and below.node is not None and below.node.type == "symlink":
                hops += 1
                if hops > MAX_HOPS:
                    return None
                resolved = [] if below.node.link.startswith("/") else resolved
                pending.extend(below.node.link.split("/")[::-1])
            else:
                resolved.append((part, below))
        return "/".join([*(part for part, _ in resolved), leaf])


class _Nodes(Mapping[str, Node]):
    """The merged filesystem as a read-only mapping from path to node."""

    def __init__(self, overlay: Overlay) -> None:
        self._overlay = overlay

    def __getitem__(self, path: str) -> Node:
        node = self._overlay.get(path)
        if node is None:
            raise KeyError(path)
        return node

    def __iter__(self) -> Iterator[str]:
        return (node.path for node in self._overlay.iter_nodes())

    def __len__(self) -> int:
        return len(self._overlay)


def _joined(walked: list[_Name], rest: str) -> str:
    """The path of the last directory walked, with ``rest`` below it."""
    return f"{_path_of(walked[-1])}/{rest}" if walked else rest


def _path_of(name: _Name) -> str:
    parts = []
    here: _Name | None = name
    while here is not None and here.parent is not None:
        parts.append(here.name)
        here = here.parent
    return "/".join(reversed(parts))


def _ordered(
    directory: _Name, strays: dict[_Name, list[tuple[str, _Name]]]
) -> list[tuple[_Name, bool]]:
    """``directory``'s present children in path order: (name, False) for the entry itself,
    (name, True) for everything below it."""
    keyed: list[tuple[str, bool, _Name]] = []
    root = directory.parent is None
    for child in (directory.live or {}).values():
        if root and irregular_name(child.name):
            continue  # placed by its text, see Overlay._strays
        keyed.append((child.name, False, child))
        if child.live:
            keyed.append((child.name, True, child))
    keyed += [(key, False, literal) for key, literal in strays.get(directory, ())]
    keyed.sort(key=_by_key)
    return [(name, below) for _, below, name in keyed]


def _by_key(item: tuple[str, bool, _Name]) -> tuple[str, bool]:
    """The name, then the entry itself before what lies below it."""
    return item[0], item[1]


def _by_name(name: _Name) -> str:
    return name.name


def _owner(node: Node | None) -> tuple[int, int, int]:
    """Mode and owner of a directory; an implicit one is 0755 root:root."""
    return (node.mode, node.uid, node.gid) if node is not None else (0o755, 0, 0)


@cache
def _implicit_added(layer: int) -> Event:
    """The event of an implicit directory's creation: the same for every one in a layer."""
    return Event(layer, "added", "dir", 0)


def _record(name: _Name, event: Event) -> None:
    """Each name's story; most names have one event, kept without a list (a deep tree has
    an implicit directory per level, and every object is one more for the collector)."""
    if name.events is None:
        name.events = event
    elif isinstance(name.events, Event):
        name.events = [name.events, event]
    else:
        name.events.append(event)


MAX_HOPS = 40  # Linux's MAXSYMLINKS: more links than this while resolving is a loop


def merge(listings: Sequence[Iterable[EntryLike]]) -> Overlay:
    """Apply every layer's listing bottom-up."""
    overlay = Overlay()
    for index, entries in enumerate(listings):
        overlay.apply(index, entries)
    return overlay
