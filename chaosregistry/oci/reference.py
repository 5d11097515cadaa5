"""Image references (``name:tag``, ``name@sha256:...``) and platforms (``os/arch[/variant]``)."""

import re
from dataclasses import dataclass

from chaosregistry.errors import ConfigError
from chaosregistry.redaction import URL_CREDENTIALS

# The distribution spec's grammar, simplified to what a path component and a tag may hold.
_NAME = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


def repository_name(text: object, what: str = "repository") -> str:
    """``text`` if it is a valid repository name (no registry host, no tag), else ConfigError."""
    if not isinstance(text, str) or not _NAME.match(text):
        raise ConfigError(
            f"{what} {text!r} is not a repository name "
            "(lower-case letters, digits, separators; no registry host, no tag)"
        )
    return text


# Semantic Versioning 2.0.0's grammar (semver.org), pre-release and build metadata included.
# A tag cannot hold "+", so build metadata may also follow "_" (the spelling Helm and other OCI
# tools push "1.0.0+build.1" under).
SEMVER = (
    r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
    r"(?:-(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?"
    r"(?:[+_][0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?"
)
# The tag convention ``<project>-<env>-<semver>``: project and environment are a lower-case
# letter then letters and digits (no "-": it separates the parts), e.g. shop-prod-1.4.2.
DEFAULT_TAG_PATTERN = rf"[a-z][a-z0-9]*-[a-z][a-z0-9]*-{SEMVER}"


def tag_pattern(text: object, what: str = "pattern") -> "re.Pattern[str]":
    """``text`` compiled (empty: the default convention), else ConfigError in one line."""
    if not isinstance(text, str):
        raise ConfigError(f"{what} must be a regular expression (a string), got {text!r}")
    try:
        return re.compile(text or DEFAULT_TAG_PATTERN)
    except re.error as exc:
        raise ConfigError(f"{what} {text!r} is not a valid regular expression: {exc}") from None


@dataclass(frozen=True)
class ImageReference:
    """A repository plus a tag or a digest, relative to one registry."""

    repository: str
    reference: str

    @property
    def is_digest(self) -> bool:
        return self.reference.startswith("sha256:")

    def __str__(self) -> str:
        separator = "@" if self.is_digest else ":"
        return f"{self.repository}{separator}{self.reference}"

    @classmethod
    def parse(cls, text: str) -> "ImageReference":
        """Parse ``name[:tag]`` or ``name@sha256:...``; the tag defaults to ``latest``."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("image reference is empty")
        text = text.strip()
        if "@" in text:
            repository, reference = text.split("@", 1)
            if not _DIGEST.match(reference) and ("/" in reference or "://" in text):
                # user:password@host/name: never repeat the text
                raise ConfigError(f"image reference {URL_CREDENTIALS}")
            if not _DIGEST.match(reference):
                raise ConfigError(f"image reference {text!r}: digest must be sha256:<64 hex>")
        else:
            slash = text.rfind("/")
            colon = text.rfind(":")
            if colon > slash:
                repository, reference = text[:colon], text[colon + 1 :]
            else:
                repository, reference = text, "latest"
            if not _TAG.match(reference):
                raise ConfigError(f"image reference {text!r}: invalid tag {reference!r}")
        if not _NAME.match(repository):
            raise ConfigError(
                f"image reference {text!r}: invalid repository name {repository!r} "
                "(lower-case letters, digits, separators; no registry host here)"
            )
        return cls(repository, reference)


def split_image_name(text: str) -> tuple[str, ImageReference]:
    """A pod's image name -> (its registry host, the reference relative to that registry).

    The container runtimes' rule: the first path component names a registry host when it
    holds a ``.`` or a ``:`` or is ``localhost``; without one, ``host`` is "" (the runtime's
    default registry). ConfigError for a name that is not an image reference.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("image name is empty")
    first, slash, rest = text.strip().partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, ImageReference.parse(rest)
    return "", ImageReference.parse(text.strip())


@dataclass(frozen=True)
class Platform:
    """``os/architecture[/variant]`` as in an image index entry."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    @classmethod
    def parse(cls, text: str) -> "Platform":
        parts = text.strip().split("/") if isinstance(text, str) else []
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(f"platform {text!r} is not os/arch[/variant] (e.g. linux/amd64)")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    def matches(self, descriptor_platform: dict[str, str]) -> bool:
        """True when an index entry's ``platform`` object is this platform."""
        if descriptor_platform.get("os") != self.os:
            return False
        if descriptor_platform.get("architecture") != self.architecture:
            return False
        return not self.variant or descriptor_platform.get("variant", "") == self.variant
