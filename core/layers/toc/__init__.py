"""Layers that carry their own table of contents: eStargz and zstd:chunked, read by range.

Both formats are ordinary tar.gz / tar.zst layers (any client can pull and apply them) that
also carry a TOC: a JSON list of every entry with the compressed offsets of each regular
file's data. Reading the TOC lists a layer for the cost of its footer and TOC (~1 % of the
blob) instead of the whole blob, and reading one file costs only that file's chunks.

Everything here needs just a range fetcher (``Fetch``), so it runs the same against the
registry client, a cache or bytes in memory. The formats:

- eStargz: gzip members; a regular file's data starts a new member (its tar header sits in
  the member before, or, with ``innerOffset``, earlier in the same member); the TOC is a
  member holding a tar entry ``stargz.index.json``; the last 51 bytes are an empty gzip
  member whose FEXTRA subfield ``SG`` holds the TOC offset as ``%016x`` + ``STARGZ`` (legacy
  stargz: 47 bytes, the extra field without its subfield header).
- zstd:chunked: zstd frames, a file's data in frames of its own (``offset``..``endOffset``);
  then skippable frames holding the zstd-compressed TOC ("manifest"), the tar-split data and
  a footer of little-endian u64s ending in ``GNUlInUx`` (72 bytes with its frame header; the
  older footer's last 40 bytes end in ``GnUlInUx``). Layer annotations give the manifest's
  position and checksum, so a listing can cost one range request.

The modules: ``model`` (the ``Toc``, its chunks, and the builder that turns raw entries into
them), ``footer`` (finding, fetching and verifying the TOC: ``read_toc``), ``jsonstream``
(its JSON parsed as it arrives: ``parse_toc``), ``files`` (one file read by its chunks:
``read_toc_file``) and ``checks`` (spans and digests, shared by the reads).
"""
