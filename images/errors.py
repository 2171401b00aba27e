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
