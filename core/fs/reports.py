"""Answers about the merged filesystem, built from an :class:`~.fs.Overlay` without I/O.

The service gathers listings and the few file heads triage needs; everything that turns them
into the answer models (provenance, removed files, find, diff, triage) lives here, so it is
tested on plain lists.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from layerpeek.core.fs.find import FindSpec
from layerpeek.core.fs.overlay import Event, Irregular, Node, Overlay
from layerpeek.core.fs.triage import mode_problems, secret_kind
from layerpeek.core.image.config import ImageConfig
from layerpeek.core.image.manifest import Manifest
from layerpeek.core.models import (
    DiffChange,
    DiffReport,
    EntryInfo,
    Finding,
    FindMatch,
    IrregularInfo,
    MergedListing,
    PathEvent,
    PathTrace,
    RemovedFile,
    RemovedReport,
)
from layerpeek.core.paging import window

_COMPARED = ("type", "size", "mode", "uid", "gid", "link")
_SEVERITY = {"high": 0, "medium": 1, "low": 2}
_HIGH_SECRETS = frozenset(
    {
        "AWS credentials",
        "gcloud credentials",
        "gcloud access tokens",
        "gcloud application default credentials",
        "Azure access tokens",
        "Azure token cache",
        "Docker registry credentials",
        "Kubernetes credentials",
        "git credentials",
        "npm registry credentials",
        "PyPI credentials",
        "netrc login credentials",
        "PostgreSQL passwords",
    }
)


@dataclass(frozen=True)
class LayerFacts:
    """Per layer index: its blob digest and the build step that made it."""

    digests: Sequence[str]
    steps: Sequence[str]

    def step(self, layer: int) -> str:
        return self.steps[layer] if 0 <= layer < len(self.steps) else ""


def layer_facts(manifest: Manifest, config: ImageConfig) -> LayerFacts:
    """Layer digests and build steps of an image, by layer index."""
    count = len(manifest.layers)
    return LayerFacts(
        digests=[d.digest for d in manifest.layers],
        steps=[config.step_for_layer(i) for i in range(count)],
    )


def entry_of(node: Node) -> EntryInfo:
    """A merged entry as the listing contract shows it: the layer that provides it."""
    return EntryInfo.of(node.layer, node)


def path_events(overlay: Overlay, facts: LayerFacts, path: str) -> list[PathEvent]:
    return [_event(facts, path, e) for e in overlay.story(path)]


def _event(facts: LayerFacts, path: str, event: Event) -> PathEvent:
    return PathEvent(
        layer=event.layer,
        action=event.action,
        type=event.type,
        size=event.size,
        cause=event.cause,
        created_by=facts.step(event.layer),
        layer_digest=facts.digests[event.layer],
        layer_path=event.shipped_as or path,
    )


def trace(overlay: Overlay, facts: LayerFacts, reference: str, path: str) -> PathTrace:
    """The story of ``path``; the layers that ship a regular file there can be read."""
    path = overlay.resolve(path)
    node = overlay.get(path)
    events = path_events(overlay, facts, path)
    readable = sorted(
        {e.layer for e in events if e.action in ("added", "changed") and e.type == "file"}
    )
    return PathTrace(
        reference=reference,
        path=path,
        exists=node is not None,
        entry=entry_of(node) if node else None,
        events=events,
        readable_layers=readable,
    )


def removed_report(overlay: Overlay, facts: LayerFacts, reference: str) -> RemovedReport:
    """Files removed from view whose bytes lower layers still ship (directories excluded)."""
    files = [
        RemovedFile(
            path=r.node.path,
            type=r.node.type,
            size=r.node.size if r.node.type == "file" else 0,
            layer=r.node.layer,
            layer_path=r.node.layer_path,
            created_by=facts.step(r.node.layer),
            removed_in=r.layer,
            removed_by=facts.step(r.layer),
            action=r.action,
            cause=r.cause,
        )
        for r in overlay.unreachable()
    ]
    files.sort(key=lambda f: (-f.size, f.path, f.layer))
    return RemovedReport(reference=reference, files=files, total_size=sum(f.size for f in files))


def merged_page(
    nodes: Sequence[Node],
    irregular: Iterable[Irregular],
    reference: str,
    start: int,
    limit: int | None,
    where: Callable[[str], bool] | None = None,
) -> MergedListing:
    """Paths ``start`` to ``start + limit`` (None: to the end) of the merged filesystem's
    ``nodes`` in path order, or of those whose path ``where`` accepts; a model is built for
    the page's paths alone."""
    chosen = nodes if where is None else [n for n in nodes if where(n.path)]
    shown, next_start = window(chosen, start, limit)
    return MergedListing(
        reference=reference,
        entries=[entry_of(n) for n in shown],
        total=len(chosen),
        next_start=next_start,
        irregular=[IrregularInfo(path=i.path, layer=i.layer, reason=i.reason) for i in irregular],
    )


def matching(spec: FindSpec, entries: Iterable[EntryInfo]) -> list[EntryInfo]:
    """The entries ``spec`` matches, in their order."""
    return [e for e in entries if spec.matches(e.path, e.type, e.size)]


def find_matches(
    overlay: Overlay, facts: LayerFacts, spec: FindSpec, layer_entries: Iterable[EntryInfo] | None
) -> list[FindMatch]:
    """Matches among the merged nodes, or among ``layer_entries`` (every layer's own
    entries, whiteouts included) when given; each with its path's story."""
    if layer_entries is None:
        found: Iterable[EntryInfo] = (
            entry_of(n) for n in overlay.iter_nodes() if spec.matches(n.path, n.type, n.size)
        )
    else:
        found = matching(spec, layer_entries)
    return [
        FindMatch(**e.model_dump(), history=path_events(overlay, facts, _placed(overlay, e)))
        for e in found
    ]


def _placed(overlay: Overlay, entry: EntryInfo) -> str:
    """Where the merged filesystem files a layer's entry (symlinked directories followed)."""
    return overlay.placed.get((entry.layer, entry.path), entry.path)


def diff(
    old: Overlay, old_facts: LayerFacts, new: Overlay, new_facts: LayerFacts
) -> tuple[list[EntryInfo], list[EntryInfo], list[DiffChange], int, int]:
    """(added, removed, changed, unchanged, unverified) from ``old`` to ``new``.

    Listings carry no content digests, so equal metadata proves equal bytes only when both
    sides take the path from the same layer blob; otherwise the path counts as unverified.
    """
    added: list[EntryInfo] = []
    removed: list[EntryInfo] = []
    changed: list[DiffChange] = []
    unchanged = unverified = 0
    for a, b in _paired(old.iter_nodes(), new.iter_nodes()):
        if a is None:
            assert b is not None, "_paired never gives two Nones"
            added.append(entry_of(b))
            continue
        if b is None:
            removed.append(entry_of(a))
            continue
        path = a.path
        fields = [f for f in _COMPARED if getattr(a, f) != getattr(b, f)]
        same_blob = old_facts.digests[a.layer] == new_facts.digests[b.layer]
        if fields:
            content = "same" if same_blob else "differs" if "size" in fields else "unknown"
            changed.append(
                DiffChange(
                    path=path, fields=fields, before=entry_of(a), after=entry_of(b), content=content
                )
            )
        elif same_blob or a.type != "file":
            unchanged += 1
        else:
            unverified += 1
    return added, removed, changed, unchanged, unverified


def _paired(old: Iterator[Node], new: Iterator[Node]) -> Iterator[tuple[Node | None, Node | None]]:
    """Two path-sorted listings side by side: (old, new) per path, None where one lacks it;
    one node of each in memory at a time."""
    a, b = next(old, None), next(new, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.path < b.path):
            yield a, None
            a = next(old, None)
        elif a is None or b.path < a.path:
            yield None, b
            b = next(new, None)
        else:
            yield a, b
            a, b = next(old, None), next(new, None)


def shared_layers(a: LayerFacts, b: LayerFacts) -> list[str]:
    """Digests of ``a``'s layers that ``b`` uses too, in ``a``'s order."""
    others = set(b.digests)
    return [d for d in dict.fromkeys(a.digests) if d in others]


def diff_report(
    a: tuple[str, str, Overlay, LayerFacts], b: tuple[str, str, Overlay, LayerFacts]
) -> DiffReport:
    """``a`` and ``b`` are (reference, manifest digest, overlay, layer facts)."""
    added, removed, changed, unchanged, unverified = diff(a[2], a[3], b[2], b[3])
    return DiffReport(
        a=a[0],
        b=b[0],
        a_digest=a[1],
        b_digest=b[1],
        added=added,
        removed=removed,
        changed=changed,
        shared_layers=shared_layers(a[3], b[3]),
        unchanged=unchanged,
        unverified=unverified,
    )


# -- triage -----------------------------------------------------------------------------------


def finding(facts: LayerFacts, kind: str, severity: str, node: Node, detail: str) -> Finding:
    return Finding(
        kind=kind,
        severity=severity,
        path=node.path,
        layer=node.layer,
        created_by=facts.step(node.layer),
        size=node.size,
        detail=detail,
    )


def secret_severity(kind: str, confirmed_key: bool) -> str:
    return "high" if confirmed_key or kind in _HIGH_SECRETS else "medium"


def mode_findings(overlay: Overlay, facts: LayerFacts) -> list[Finding]:
    """setuid, setgid and world-writable paths of the merged filesystem."""
    found = []
    for node in overlay.iter_nodes():
        for problem in mode_problems(node.type, node.mode):
            severity = "low" if problem == "world-writable" and node.type == "dir" else "medium"
            detail = f"mode {node.mode & 0o7777:04o}, owner {node.uid}:{node.gid}"
            found.append(finding(facts, problem, severity, node, detail))
    return found


def irregular_findings(overlay: Overlay, facts: LayerFacts) -> list[Finding]:
    return [
        Finding(
            kind="irregular",
            severity="medium",
            path=i.path,
            layer=i.layer,
            created_by=facts.step(i.layer),
            size=0,
            detail=i.reason,
        )
        for i in overlay.irregular
    ]


SecretCandidates = tuple[list[tuple[Node, str]], list[tuple[Node, str, int, str]]]


def secret_candidates(overlay: Overlay) -> SecretCandidates:
    """Merged nodes that look secret, and removed nodes that do (node, kind, removed in, how)."""
    present = [(n, k) for n in overlay.iter_nodes() if (k := secret_kind(n.path, n.type))]
    gone: list[tuple[Node, str, int, str]] = [
        (r.node, k, r.layer, r.action)
        for r in overlay.removed
        if (k := secret_kind(r.node.path, r.node.type))
    ]
    return present, gone


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (_SEVERITY[f.severity], f.kind, f.path, f.layer))


@dataclass(frozen=True)
class TreeFindings:
    """What triage learns from the merged tree alone, without reading a file."""

    findings: list[Finding]
    largest: list[EntryInfo]
    removed_size: int


def tree_findings(overlay: Overlay, facts: LayerFacts, largest: int) -> TreeFindings:
    """Mode and irregular-name findings, the ``largest`` biggest files and the bytes of
    removed files no hard link still reaches."""
    return TreeFindings(
        findings=mode_findings(overlay, facts) + irregular_findings(overlay, facts),
        largest=largest_files(overlay, largest),
        removed_size=sum(r.node.size for r in overlay.unreachable() if r.node.type == "file"),
    )


def largest_files(overlay: Overlay, count: int) -> list[EntryInfo]:
    top = heapq.nsmallest(count, overlay.files(), key=lambda n: (-n.size, n.path))
    return [entry_of(n) for n in top]
