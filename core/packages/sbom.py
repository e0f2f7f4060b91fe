"""An inventory as an SBOM document: CycloneDX 1.6 JSON or SPDX 2.3 JSON, built with each
project's own library (``cyclonedx-python-lib``, ``spdx-tools``), which also checks the
document against its specification before it is written.

The image is the document's subject (a CycloneDX ``container`` component, an SPDX package
the document describes and which contains the others); each package carries its purl, and
where it was found (``layerpeek:path``, ``layerpeek:layer``) as properties (CycloneDX) or a
comment (SPDX)."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.package import ExternalPackageRef, ExternalPackageRefCategory
from spdx_tools.spdx.model.package import Package as SpdxPackage
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

from layerpeek.core.errors import LayerpeekError
from layerpeek.core.packages.model import Format, PackageReport

TOOL = "layerpeek"


def sbom(report: PackageReport, format: Format) -> str:
    """The document for ``report`` in ``format``, checked by its library."""
    return cyclonedx_json(report) if format == "cyclonedx-json" else spdx_json(report)


def cyclonedx_json(report: PackageReport) -> str:
    """CycloneDX 1.6: the image as metadata component, one library component a package."""
    bom = Bom()
    bom.metadata.component = image = Component(
        name=report.reference,
        version=report.digest,
        type=ComponentType.CONTAINER,
        bom_ref=f"image:{report.digest}",
    )
    for i, package in enumerate(report.packages):
        properties = [
            Property(name="layerpeek:kind", value=package.kind),
            Property(name="layerpeek:path", value=package.path),
            Property(name="layerpeek:layer", value=str(package.layer)),
        ]
        bom.components.add(
            Component(
                name=package.name,
                version=package.version or None,
                purl=PackageURL.from_string(package.purl),
                bom_ref=f"package-{i}",
                properties=properties,
            )
        )
    # The image depends on everything it ships: the graph is complete, one level deep.
    bom.register_dependency(image, bom.components)
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise LayerpeekError(f"the CycloneDX document does not validate: {error}")
    return text


def spdx_json(report: PackageReport) -> str:
    """SPDX 2.3: the document describes the image, which contains every package."""
    image_id = "SPDXRef-Image"
    info = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=report.reference,
        document_namespace=f"https://spdx.org/spdxdocs/{TOOL}-{uuid.uuid4()}",
        creators=[Actor(ActorType.TOOL, TOOL)],
        created=datetime.now(UTC).replace(microsecond=0),
    )
    image = SpdxPackage(
        spdx_id=image_id,
        name=report.reference,
        download_location=SpdxNoAssertion(),
        version=report.digest,
        files_analyzed=False,
    )
    packages = [image]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, image_id)]
    for i, package in enumerate(report.packages):
        spdx_id = f"SPDXRef-Package-{i}"
        packages.append(
            SpdxPackage(
                spdx_id=spdx_id,
                name=package.name,
                download_location=SpdxNoAssertion(),
                version=package.version or None,
                files_analyzed=False,
                comment=f"found in {package.path}, layer {package.layer}",
                external_references=[
                    ExternalPackageRef(
                        ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", package.purl
                    )
                ],
            )
        )
        relationships.append(Relationship(image_id, RelationshipType.CONTAINS, spdx_id))
    document = Document(info, packages=packages, relationships=relationships)
    stream = io.StringIO()
    try:
        write_document_to_stream(document, stream, validate=True)
    except ValueError as exc:
        raise LayerpeekError(f"the SPDX document does not validate: {exc}") from None
    return stream.getvalue()
