"""One error vocabulary: every deliberate error is an EngineError of a family, and each edge
answers the family as it always did (HTTP status and issue code, HL7 ACK and ERR code)."""

from __future__ import annotations

import pytest

from engine.api.auth import PageRefused, SignInRequired, Unauthenticated
from engine.api.http_errors import answer_of, outcome_for
from engine.api.outcomes import FhirError, outcome_response
from engine.api.security.signin import Throttled
from engine.api.web.worklist_page import NotAllowed
from engine.core import errors
from engine.core.errors import EngineError
from engine.core.events import EventError
from engine.core.site import SiteProfileError
from engine.fhir.reading import InvalidFhir
from engine.hl7.ack import issue_for
from engine.hl7.adt import Hl7Refusal
from engine.hl7.framing import FrameTooLarge
from engine.hl7.message import Hl7ParseError
from engine.hl7.timestamps import Hl7TimestampError
from engine.rules.loader import RulesetError
from engine.rules.reference import ReferenceTableError
from engine.security.passwords import WeakPassword
from engine.security.tokens import SigningKeyError, TokenError
from engine.security.users import AccountError
from engine.tools.cases.runner import StoryError
from engine.tools.cli import CliError
from engine.work import lifecycle

ERRORS = [lifecycle.TaskError, lifecycle.Refused, lifecycle.Conflict, lifecycle.Forbidden,
          Unauthenticated, SignInRequired, PageRefused, NotAllowed, EventError, InvalidFhir,
          Hl7Refusal, FrameTooLarge, Hl7ParseError, Hl7TimestampError, RulesetError,
          ReferenceTableError, SiteProfileError, WeakPassword, Throttled, SigningKeyError,
          TokenError, AccountError, StoryError, CliError]
WERE_VALUE_ERRORS = [EventError, InvalidFhir, Hl7ParseError, Hl7TimestampError, RulesetError,
                     ReferenceTableError, SiteProfileError, WeakPassword, SigningKeyError,
                     AccountError]


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_engine_exception_is_an_engine_error(cls):
    assert issubclass(cls, EngineError)


@pytest.mark.parametrize("cls", WERE_VALUE_ERRORS, ids=lambda c: c.__name__)
def test_value_errors_stay_value_errors(cls):
    assert issubclass(cls, ValueError)


@pytest.mark.parametrize("error, answer", [
    (lifecycle.Refused("no"), (422, "business-rule")),
    (lifecycle.Conflict("stale"), (412, None)),
    (lifecycle.Forbidden("role"), (403, None)),
    (Unauthenticated("who"), (401, None)),
    (InvalidFhir("bad"), (400, None)),
    (EventError("does not apply"), (422, None)),
    (Throttled(5), (429, None)),
    (RulesetError([]), None),  # the server's own problem: answered 500 as unexpected
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "")
def test_the_http_edge_answers_by_family(error, answer):
    assert answer_of(error) == answer
    assert "status" not in vars(type(error))


def test_the_hl7_edge_answers_an_inapplicable_event_ae_207():
    code, issue = issue_for(EventError("nothing to cancel"))
    assert (code, issue.code, issue.text) == ("AE", 207, "nothing to cancel")
    assert issue_for(RulesetError([])) is None


@pytest.mark.parametrize("family, status, code", [
    (errors.InvalidInput, 400, None),
    (errors.Malformed, 400, None),
    (errors.NotFound, 404, None),
    (errors.Conflict, 409, None),
    (errors.StaleVersion, 412, None),
    (errors.InputTooLarge, 413, None),
    (errors.NotApplicable, 422, None),
    (errors.RuleRefused, 422, "business-rule"),
    (errors.NotPermitted, 403, None),
    (errors.StorageUnavailable, 503, None),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_a_family_the_fhir_api_raises_answers_as_its_fhir_error_did(family, status, code):
    was = FhirError(status, "what went wrong", code)
    expected = outcome_response(was.status, was.diagnostics, was.code)
    answer = outcome_for(family("what went wrong"))
    assert (answer.status_code, answer.body, answer.media_type) == (
        expected.status_code, expected.body, expected.media_type)
