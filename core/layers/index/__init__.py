"""Layer indexes: every entry of a layer, learnt once per digest, then served from the cache.

A listing asks ``LayerIndexes.view(..., wanted=N)`` for the first N entries. A layer known in
full (cached by an earlier scan) answers without touching the network. Otherwise a
``LayerScan`` (blob reader + decompressor + tar scanner) reads just far enough, and stays
alive between pages, so page 2 continues from where page 1 stopped instead of reading the
layer again. When a scan reaches the end of the layer its complete index is stored in the
cache.

``LayerIndexes.complete`` is the one place that knows a layer in full without scanning it
(memory, then the cache). A listing from a TOC (``toc.footer.read_toc``: eStargz, zstd:chunked)
belongs there, after the cache and before a scan, so later listings cost nothing.

What is shared by digest is what was checked against the digest. A scan stores its index
only once it has read the whole blob and the blob hashed to the layer's digest
(``BlobReader``); an open scan is shared only once it has. Everything is kept within the
registry that served it (``cache.interface.key_for``); a TOC, which only the manifest's annotation
vouches for, within its repository. A registry that lies about a digest cannot change what
another registry's image lists, nor learn what another registry's layer holds.

The modules: ``model`` (``LayerIndex``, ``LayerView``), ``builder`` (``LayerScan``), ``store``
(``LayerIndexes``: memory, cache, leases and shared scans), ``encoding`` (an index as bytes
for the cache) and ``ranged`` (one file read by range through an index).
"""
