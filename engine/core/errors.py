"""What went wrong, in the engine's terms: one hierarchy every deliberate error belongs to.

Each family says what happened, never how a protocol answers it. The edges decide that
from the family, each in one table: the HTTP edge (engine.api.http_errors) picks the status
and OperationOutcome, the web pages their page, the HL7 edge (engine.hl7.ack) AE or AR and
the ERR code. So a domain error carries words for a person and nothing about a transport.

    EngineError
      InvalidInput          the input cannot be used as sent
        Malformed           ... it cannot be read as what it claims to be (unparseable)
        NotApplicable       ... it reads, but does not apply to what is on file
        InputTooLarge       ... it is over a size limit
      NotFound              what was asked for is not here
      Conflict              the change collides with the current state
        StaleVersion        ... it was made from a version that is no longer current
        Ambiguous           ... its condition matches more than one record
      NotAuthenticated      who is asking is not known
      NotPermitted          who is asking may not do this
      RuleRefused           a business rule (the task lifecycle, a policy) refuses it
      TooManyAttempts       refused for now: too many failures lately
      StorageUnavailable    the store cannot be reached; the same request may succeed later
      ConfigurationError    the engine's own setup (settings, site profile, keys) is unusable
        RulesetProblem      ... a ruleset or a reference table beside it is unusable

Existing classes that were ValueErrors stay ValueErrors (callers may catch them so); the
families themselves add no builtin base. Dependency-free on purpose: every floor may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

Answer = TypeVar("Answer")


class EngineError(Exception):
    """Base of every error the engine raises on purpose; its text is for a person to act on."""


class InvalidInput(EngineError):
    """The input cannot be used as sent."""


class Malformed(InvalidInput):
    """The input cannot be read as what it claims to be (syntax, encoding, shape)."""


class NotApplicable(InvalidInput):
    """The input reads well but does not apply to what is on file (or to this endpoint)."""


class InputTooLarge(InvalidInput):
    """The input is over a configured size limit."""


class NotFound(EngineError):
    """What was asked for is not known here."""


class Conflict(EngineError):
    """The change collides with the current state of what it changes."""


class StaleVersion(Conflict):
    """The change was made from a version that is no longer current: read again, retry."""


class Ambiguous(Conflict):
    """The change's condition (a conditional create's search) matches more than one record,
    so it cannot say which it means: narrow the condition."""


class NotAuthenticated(EngineError):
    """Who is asking is not known (no, a bad or a revoked credential)."""


class NotPermitted(EngineError):
    """Who is asking is known but may not do this."""


class RuleRefused(EngineError):
    """A business rule refuses the change (the task lifecycle, a password policy)."""


class TooManyAttempts(EngineError):
    """Refused for now after too many failures; the same request may succeed later."""


class StorageUnavailable(EngineError):
    """The store cannot be reached or is overloaded; nothing was changed, retry later."""


class ConfigurationError(EngineError):
    """The engine's own setup is unusable (settings, site profile, signing key)."""


class RulesetProblem(ConfigurationError):
    """A ruleset, or a reference table beside it, is missing or invalid."""


def answer_for(error: EngineError, answers: Mapping[type[EngineError], Answer]) -> Answer | None:
    """What an edge's table answers for `error`: the entry of its most specific family, None
    when no family of it has one (the edge then treats it as its own failure)."""
    for cls in type(error).__mro__:
        found = answers.get(cls)
        if found is not None:
            return found
    return None
