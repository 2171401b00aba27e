"""The one error tree of the project.

Every error we raise on purpose derives from :class:`RuntimeErrorBase`; each subclass carries the
HTTP status it maps to, so the HTTP layers translate errors in one place (see ``http_util``).
"""


class RuntimeErrorBase(Exception):
    """Root of the project's errors. ``status`` is the HTTP status a handler answers with."""

    status = 500


class BadRequest(RuntimeErrorBase):
    """The request is malformed or fails validation (HTTP 400)."""

    status = 400


class Unauthorized(RuntimeErrorBase):
    status = 401


class Forbidden(RuntimeErrorBase):
    status = 403


class NotFound(RuntimeErrorBase):
    status = 404


class MethodNotAllowed(RuntimeErrorBase):
    status = 405


class NotAcceptable(RuntimeErrorBase):
    status = 406


class Conflict(RuntimeErrorBase):
    status = 409


class PayloadTooLarge(RuntimeErrorBase):
    status = 413


class UnsupportedMediaType(RuntimeErrorBase):
    status = 415


class NotImplementedCall(RuntimeErrorBase):
    status = 501


class ServiceUnavailable(RuntimeErrorBase):
    status = 503


class FlagError(RuntimeErrorBase):
    """A command-line flag or ``MESOS_*`` variable is invalid."""


class LaunchError(RuntimeErrorBase):
    """A container or executor could not be started."""
