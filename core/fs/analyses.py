"""The questions asked of an image's merged filesystem, each from one kept merged view.

A merged listing, a path's story (``trace``), removed files, ``find``, ``diff`` and
``triage``: each takes the view (``merge.Merges``), runs the pure report of ``reports`` over
it in a worker thread (its work grows with a listing the image's author chose) and marks the
answer with the damaged layers it could not read to their end.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterator
from functools import partial
from itertools import islice

import anyio
import anyio.to_thread

from layerpeek.core.errors import LayerpeekError
from layerpeek.core.fs import reports
from layerpeek.core.fs.find import FindSpec
from layerpeek.core.fs.merge import Merges
from layerpeek.core.fs.overlay import Node, Overlay
from layerpeek.core.fs.read import FileReads
from layerpeek.core.fs.reports import LayerFacts, layer_facts
from layerpeek.core.fs.triage import (
    CONTENT_LIMIT,
    CONTENT_READS,
    OS_RELEASE,
    PRIVATE_KEY,
    parse_os_release,
    runs_as_root,
    wants_content_check,
)
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.layers import listing
from layerpeek.core.layers.entry import IMAGE_LIMITS, Tally, display_path
from layerpeek.core.models import (
    DiffReport,
    EntryInfo,
    Finding,
    FindResult,
    IrregularInfo,
    LayerProblem,
    MergedListing,
    OsInfo,
    PathTrace,
    RemovedReport,
    TriageReport,
    marks,
)
from layerpeek.core.paging import check_page, window


def _facts(image: ResolvedImage) -> LayerFacts:
    return layer_facts(image.manifest, image.config)


async def merged_listing(
    merges: Merges,
    image: ResolvedImage,
    start: int = 0,
    limit: int | None = None,
    where: Callable[[str], bool] | None = None,
) -> MergedListing:
    """The merged filesystem sorted by path, a slice of the kept view
    (``Layerpeek.merged_listing``)."""
    check_page(start, limit)
    problems: list[LayerProblem] = []
    view = await merges.view(image, problems)
    page = partial(
        reports.merged_page,
        view.nodes,
        view.overlay.irregular,
        str(image.reference),
        start,
        limit,
        where,
    )
    found = await anyio.to_thread.run_sync(page)
    return found.model_copy(update=marks(problems))


async def merged_entries(
    merges: Merges,
    image: ResolvedImage,
    problems: list[LayerProblem],
    irregular: list[IrregularInfo],
) -> AsyncGenerator[EntryInfo, None]:
    """The whole merged filesystem sorted by path, one entry at a time, made in batches in
    a worker thread (``Layerpeek.merged_entries``)."""
    view = await merges.view(image, problems)
    irregular.extend(
        IrregularInfo(path=i.path, layer=i.layer, reason=i.reason) for i in view.overlay.irregular
    )
    nodes = iter(view.nodes)
    while batch := await anyio.to_thread.run_sync(_entries_of, nodes, listing.YIELD_EVERY):
        for entry in batch:
            yield entry


def _entries_of(nodes: Iterator[Node], count: int) -> list[EntryInfo]:
    """In a worker thread: the next ``count`` merged nodes as listing entries."""
    return [reports.entry_of(node) for node in islice(nodes, count)]


async def trace(merges: Merges, image: ResolvedImage, path: str) -> PathTrace:
    """Where ``path`` came from: added, changed, deleted in which layers, by which steps."""
    clean = display_path(path.strip())
    if not clean:
        raise LayerpeekError("a path is needed, not the root directory")
    problems: list[LayerProblem] = []
    overlay = await merges.overlay(image, problems)
    found = await anyio.to_thread.run_sync(
        reports.trace, overlay, _facts(image), str(image.reference), clean
    )
    return found.model_copy(update=marks(problems))


async def removed_files(merges: Merges, image: ResolvedImage) -> RemovedReport:
    """Files a later layer deleted or overwrote that a lower layer still ships (all of
    them, largest first)."""
    problems: list[LayerProblem] = []
    overlay = await merges.overlay(image, problems)
    report = await anyio.to_thread.run_sync(
        reports.removed_report, overlay, _facts(image), str(image.reference)
    )
    return report.model_copy(update=marks(problems))


async def find(
    merges: Merges,
    image: ResolvedImage,
    spec: FindSpec,
    merged: bool = True,
    start: int = 0,
    limit: int | None = None,
) -> FindResult:
    """Entries matching ``spec`` in the merged view (sorted by path) or in every layer
    (layer order, whiteouts included), each with its path's story; paged."""
    check_page(start, limit)
    problems: list[LayerProblem] = []
    overlay = await merges.overlay(image, problems)
    per_layer = None if merged else await _layer_matches(merges, image, spec)
    matches = await anyio.to_thread.run_sync(
        reports.find_matches, overlay, _facts(image), spec, per_layer
    )
    shown, next_start = window(matches, start, limit)
    return FindResult(
        reference=str(image.reference),
        pattern=spec.pattern,
        merged=merged,
        matches=shown,
        total=len(matches),
        next_start=next_start,
        **marks(problems),
    )


async def _layer_matches(merges: Merges, image: ResolvedImage, spec: FindSpec) -> list[EntryInfo]:
    """Every layer's own entries (whiteouts included) that ``spec`` matches, layer by
    layer; a damaged layer's up to its damage (the merged view already names it)."""
    found: list[EntryInfo] = []
    tally = Tally(IMAGE_LIMITS)
    for index in range(len(image.manifest.layers)):
        entries = listing.entries(
            merges.indexes, image, index, merges.on_progress, whole=True, tally=tally, problems=[]
        )
        layer = [e async for e in entries]
        found += await anyio.to_thread.run_sync(reports.matching, spec, layer)
    return found


async def diff(merges: Merges, a: ResolvedImage, b: ResolvedImage) -> DiffReport:
    """Added, removed and changed paths from ``a`` to ``b`` at the merged level, and the
    layers they share (every list complete, sorted by path)."""
    sides = []
    problems: list[LayerProblem] = []
    for image in (a, b):
        overlay = await merges.overlay(image, problems)
        sides.append((str(image.reference), image.manifest.digest, overlay, _facts(image)))
    report = await anyio.to_thread.run_sync(reports.diff_report, sides[0], sides[1])
    return report.model_copy(update=marks(problems))


async def triage(reads: FileReads, image: ResolvedImage, largest: int = 10) -> TriageReport:
    """Secrets (present, or deleted above a layer that still ships them), setuid/setgid
    and world-writable paths, the user, the OS and the largest files; findings sorted by
    severity. Reads only os-release and at most CONTENT_READS small key-like files."""
    if largest < 0:
        raise LayerpeekError("the number of largest files to show cannot be negative")
    problems: list[LayerProblem] = []
    overlay = await reads.merges.overlay(image, problems)
    facts = _facts(image)
    candidates = await anyio.to_thread.run_sync(reports.secret_candidates, overlay)
    findings = await _secret_findings(reads, image, candidates, facts)
    shape = await anyio.to_thread.run_sync(reports.tree_findings, overlay, facts, largest)
    return TriageReport(
        reference=str(image.reference),
        digest=image.manifest.digest,
        platform=str(image.platform),
        user=image.config.user,
        runs_as_root=runs_as_root(image.config.user),
        os=await _os_info(reads, image, overlay),
        findings=reports.sort_findings(findings + shape.findings),
        largest=shape.largest,
        removed_size=shape.removed_size,
        **marks(problems),
    )


async def _secret_findings(
    reads: FileReads,
    image: ResolvedImage,
    candidates: reports.SecretCandidates,
    facts: LayerFacts,
) -> list[Finding]:
    present, gone = candidates
    budget = [CONTENT_READS]
    found = []
    for node, kind in present:
        detail, key = await _key_check(reads, image, node, kind, budget)
        if detail is not None:
            severity = reports.secret_severity(kind, key)
            found.append(reports.finding(facts, "secret", severity, node, detail))
    for node, kind, removed_in, action in gone:
        detail, _ = await _key_check(reads, image, node, kind, budget)
        if detail is not None:
            how = f"{action} in layer {removed_in} ({facts.step(removed_in)[:60]})"
            detail += f"; {how}, still shipped in layer {node.layer}"
            found.append(reports.finding(facts, "deleted-secret", "high", node, detail))
    return found


async def _key_check(
    reads: FileReads, image: ResolvedImage, node: Node, kind: str, budget: list[int]
) -> tuple[str | None, bool]:
    """(detail, confirmed private key); detail is None for a ``.pem`` whose content is
    no private key (a certificate). ``budget`` is the remaining content-check budget."""
    if node.type != "file" or not wants_content_check(kind, node.size) or budget[0] <= 0:
        return kind, False
    budget[0] -= 1
    head = await reads.head(image, node, CONTENT_LIMIT)
    if head is None:
        return kind, False
    if PRIVATE_KEY.search(head):
        return "private key (content checked)", True
    return (None, False) if kind.startswith("PEM") else (f"{kind} (no PEM key inside)", False)


async def _os_info(reads: FileReads, image: ResolvedImage, overlay: Overlay) -> OsInfo | None:
    """From the first os-release that is a regular file once links are followed
    (etc/os-release is usually a symlink to ../usr/lib/os-release)."""
    for asked in OS_RELEASE:
        found = overlay.lookup(asked)
        node, path = found.node, found.path
        if node is None or node.type != "file" or node.size > CONTENT_LIMIT:
            continue
        head = await reads.head(image, node, CONTENT_LIMIT)
        if head is None:
            continue
        fields = parse_os_release(head.decode("utf-8", "replace"))
        return OsInfo(
            id=fields.get("ID", ""),
            version_id=fields.get("VERSION_ID", ""),
            pretty_name=fields.get("PRETTY_NAME", ""),
            path=path,
        )
    return None
