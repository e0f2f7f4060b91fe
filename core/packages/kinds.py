"""The package kinds an inventory reads and the SBOM formats it writes, by name alone.

Apart from ``model`` so that a command line can offer them as choices without loading the
package models (pydantic, packageurl) before a command runs.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["deb", "apk", "rpm", "pypi", "npm", "golang"]
KINDS: tuple[Kind, ...] = ("deb", "apk", "rpm", "pypi", "npm", "golang")
Format = Literal["cyclonedx-json", "spdx-json"]
FORMATS: tuple[Format, ...] = ("cyclonedx-json", "spdx-json")
"""The SBOM documents of an inventory (``sbom``, whose libraries load only when asked)."""
