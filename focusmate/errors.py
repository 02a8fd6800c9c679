"""The exceptions the core raises: each one a message a user can act on.

Every error derives from :class:`FocusMateError`, so the CLI and the app can catch one type and
show ``str(err)`` without a traceback.
"""


class FocusMateError(Exception):
    """Base class: the message is meant for the user."""


class ValidationError(FocusMateError, ValueError):
    """Input breaks a domain rule (a name too short, a duration out of range, ...)."""


class NotFoundError(FocusMateError, LookupError):
    """The room, post, comment or document asked for does not exist here."""


class PermissionDeniedError(FocusMateError):
    """The local user may not do this (edit another's post, delete a room they do not own)."""


class IllegalTransitionError(FocusMateError):
    """A timer command that the timer's current state does not allow."""


class StoreError(FocusMateError):
    """The profile's database cannot be used (corrupt, foreign, newer schema, read-only...)."""


class IdentityError(FocusMateError):
    """The identity key is missing, unreadable, or the passphrase is wrong."""
