"""layerpeek's version, in one place: ``pyproject.toml`` reads it for the distribution
(``dynamic = ["version"]``), and the CLI's ``--version``, the MCP server and the registry
client's User-Agent import it, where reading the installed distribution's metadata
(``importlib.metadata``) cost every command ~20 ms of start-up."""

VERSION = "0.1.0"
