"""Errors of the image code, on the project's one error tree.

The provisioner will surface these as launch failures and the ``mesos-images`` command prints them
as one line, so each message says what was wrong and with which file or package.
"""

from agent_runtime.errors import RuntimeErrorBase


class ImageError(RuntimeErrorBase):
    """An image could not be built, read or unpacked."""


class BadArchive(ImageError):
    """A ``docker save`` archive is malformed: missing files, bad JSON, wrong digests."""


class UnsafeEntry(BadArchive):
    """A tar entry would land outside the directory it is extracted into."""


class AptError(ImageError):
    """apt could not resolve or download a Debian package."""


class ImageNotFound(ImageError):
    """No archive or registry manifest answers to the image reference."""


class RegistryError(ImageError):
    """A Docker registry could not be reached or refused a request."""


class DigestMismatch(BadArchive):
    """A blob or layer's content does not hash to the digest its manifest records."""


class ProvisionError(ImageError):
    """A container's root filesystem could not be set up or torn down (mounts, copies)."""


class ImageTooLarge(ImageError):
    """A layer or an image unpacks to more bytes than the agent allows."""
