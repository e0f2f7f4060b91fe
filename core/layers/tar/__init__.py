"""Tar streams read as pushed bytes: header fields (``header``, ``numbers``, ``pax``,
``sparse``) apart from the scanner's state machine (``scanner``)."""
