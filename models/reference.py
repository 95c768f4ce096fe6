"""Reference labels a caller hands in to score a segmentation against (for example the
generator's ``truth/subjects.csv``): a CSV of ``link_key`` and ``latent_type``, read here by the
purpose pseudonym the feature tables carry. The pipeline never looks for one itself."""
from __future__ import annotations

import csv
from pathlib import Path

from mydata.errors import UsageError
from mydata.keys import Secret, purpose_pseudonym


class BadReferenceLabels(UsageError):
    """The reference-labels file is missing or lacks its columns."""


def reference_labels(path: Path, secret: Secret) -> dict[str, str]:
    """Purpose pseudonym -> label, from a CSV of ``link_key`` and ``latent_type``; ``secret`` is the
    purpose secret the feature tables' pseudonyms were made with."""
    if not path.is_file():
        raise BadReferenceLabels(f"no reference labels at {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"link_key", "latent_type"} <= set(reader.fieldnames or ()):
            raise BadReferenceLabels(f"{path} needs the columns link_key and latent_type, has {reader.fieldnames}")
        return {purpose_pseudonym(secret, row["link_key"]): row["latent_type"] for row in reader}
