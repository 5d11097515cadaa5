"""MkDocs hooks of the documentation site (mkdocs.yml's ``hooks``): the activity reference is
generated at every build from the activities themselves (``chaosregistry.experiment.reference``),
so a probe or action added anywhere under ``chaosregistry/probes`` or ``chaosregistry/actions``
is documented with nothing else to edit."""

from typing import Any

from mkdocs.structure.files import File, Files

from chaosregistry.experiment.reference import reference_pages


def on_files(files: Files, config: Any) -> Files:
    for path, markdown in reference_pages().items():
        files.append(File.generated(config, path, content=markdown))
    return files
