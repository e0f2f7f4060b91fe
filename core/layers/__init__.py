"""The range engine: reading a layer blob as a stream of tar entries."""
