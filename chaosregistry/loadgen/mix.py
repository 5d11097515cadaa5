"""The weighted image mix a pull load draws from, and its text forms.

One parser for every place a mix comes from (an action argument, a Locust custom argument, an
environment variable), so they cannot disagree. Accepted forms:

- a list whose items are ``"repository:tag"`` (or ``@sha256:...``) strings or
  ``{"image": "repository:tag", "weight": 3}`` mappings (weight defaults to 1);
- that list as JSON text;
- comma-separated references (``"tiny/hello:latest,shop/api:latest"``), all of weight 1;
- ``@/path/to/file.json``: the JSON list read from a file.
"""

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from chaosregistry.errors import ConfigError
from chaosregistry.oci.reference import ImageReference

# A guard against a mix so large that drawing from it would cost more than pulling.
MAX_IMAGES = 10_000


@dataclass(frozen=True)
class ImageChoice:
    """One image of the mix and its relative weight."""

    repository: str
    reference: str
    weight: float = 1.0

    @cached_property
    def label(self) -> str:
        """``repository:tag`` or ``repository@digest``, as pull records name it."""
        return str(ImageReference(self.repository, self.reference))

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.label, "weight": self.weight}


def parse_image_mix(value: Any) -> list[ImageChoice]:
    """The mix described by ``value`` (see the module docstring); ConfigError when unusable."""
    if isinstance(value, str):
        value = _parse_text(value)
    if not isinstance(value, list) or not value:
        raise ConfigError("images: name at least one image (a list of 'repository:tag')")
    if len(value) > MAX_IMAGES:
        raise ConfigError(f"images: {len(value)} images is over the limit of {MAX_IMAGES}")
    return [_parse_item(item) for item in value]


def _parse_text(text: str) -> Any:
    text = text.strip()
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            return json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"images: cannot read {path} ({exc.strerror})") from None
        except ValueError as exc:
            raise ConfigError(f"images: {path} is not JSON ({exc})") from None
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"images: not a JSON list ({exc})") from None
    return [part for part in (piece.strip() for piece in text.split(",")) if part]


def _parse_item(item: Any) -> ImageChoice:
    weight: Any = 1.0
    if isinstance(item, dict):
        unknown = set(item) - {"image", "weight"}
        if unknown or "image" not in item:
            raise ConfigError(
                f'images: each mapping is {{"image": "repository:tag", "weight": n}}, got {item!r}'
            )
        weight = item.get("weight", 1.0)
        item = item["image"]
    if not isinstance(item, str):
        raise ConfigError(f"images: {item!r} is not an image reference")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
        raise ConfigError(f"images: weight of {item} must be a positive number, got {weight!r}")
    reference = ImageReference.parse(item)
    return ImageChoice(reference.repository, reference.reference, float(weight))


def mix_to_json(mix: list[ImageChoice]) -> str:
    """The JSON text ``parse_image_mix`` reads back into ``mix``."""
    return json.dumps([choice.to_dict() for choice in mix])
