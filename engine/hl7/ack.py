"""ACK/NACK messages: shaped once by hl7apy per version, filled in per message.

Building an hl7apy Message per ACK costs ~2 ms; filling a template it produced costs a few
microseconds, and tests/test_hl7_ack.py parses our ACKs back with hl7apy, at every version,
to prove them well-formed.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from hl7apy import SUPPORTED_LIBRARIES
from hl7apy.core import Message as HlMessage

from engine.core.errors import EngineError, NotApplicable, answer_for
from engine.core.events import DuplicateKey, UnknownKey

ERROR_TEXT = {
    0: "Message accepted",
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    206: "Application record locked",
    207: "Application internal error",
}
SUPPORTED_VERSIONS = frozenset(
    ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"]
)
ACK_FALLBACK_VERSION = "2.5.1"
# ERR-1 (ELD) carried the error until 2.5 added ERR-2..8; MSA-3 was withdrawn in 2.7.
_ERR1_VERSIONS = frozenset(["2.3", "2.3.1", "2.4"])
_NO_MSA3_VERSIONS = frozenset(["2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"])
_MSA3_MAX = 80  # ST(80) in 2.3 to 2.6
_TOKEN = re.compile(r"QQ([A-Z]+)QQ")


@dataclass(frozen=True, slots=True)
class AckIssue:
    """Why a message was not accepted, in HL7 table 0357 terms plus words a person can act on.

    A value, not an exception: what an AE or AR says in MSA-3 and ERR. Errors that refuse a
    message carry one (engine.hl7.adt.Hl7Refusal); `issue_for` makes one from an engine error.
    """

    code: int
    text: str
    segment: str | None = None
    field: int | None = None


# The HL7 edge's table: the ACK code and HL7 table 0357 code an engine error raised while
# applying a message answers with, by family (engine.core.errors). Errors of the HL7
# mapping itself (engine.hl7.adt.Hl7Refusal) carry their own answer.
ANSWERS: dict[type[EngineError], tuple[str, int]] = {
    NotApplicable: ("AE", 207),
    UnknownKey: ("AE", 204),  # unknown key identifier: a prior id or visit not on file
    DuplicateKey: ("AE", 205),  # duplicate key identifier: the new key is another record's
}


def issue_for(error: EngineError) -> tuple[str, AckIssue] | None:
    """AE or AR and the ERR contents for `error`, by its most specific family; None when no
    family of it has an answer here (the caller then treats it as an internal error)."""
    found = answer_for(error, ANSWERS)
    return (found[0], AckIssue(found[1], str(error))) if found is not None else None


@dataclass(frozen=True, slots=True)
class Header:
    """The MSH facts an ACK mirrors; fields are '' when the message did not carry them.

    The four application/facility fields are the HD namespace (component 1), which is what
    identifies a sender; `routing`, when known, keeps every decoded component of MSH-3..6 so
    the ACK can mirror a full HD (`APP^1.2.3^ISO`).
    """

    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    control_id: str = ""
    version: str = ""
    trigger: str = ""
    processing_id: str = "P"
    routing: tuple[tuple[str, ...], ...] | None = None


def escape(value: str, truncation: str = "") -> str:
    """Escape HL7 delimiters (standard encoding characters) so a value cannot break the ACK.

    A CR or LF would end the segment, so they become spaces. `truncation` is the 2.7+
    truncation character when MSH-2 declares one.
    """
    if "\\" in value:
        value = value.replace("\\", "\\E\\")
    for char, seq in (("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        if char in value:
            value = value.replace(char, seq)
    if truncation and truncation in value:
        value = value.replace(truncation, "\\P\\")
    if "\r" in value or "\n" in value:
        value = value.replace("\r", " ").replace("\n", " ")
    return value


def _text(value: str, truncation: str, limit: int | None = None) -> str:
    """Free text for people: whitespace collapsed, cut to `limit` characters, escaped."""
    value = " ".join(value.split())
    if limit is not None and len(value) > limit:
        value = value[: limit - 3] + "..."
    return escape(value, truncation)


def _hd(components: tuple[str, ...], truncation: str) -> str:
    return "^".join(escape(c, truncation) for c in components).rstrip("^")


def _library_version(version: str) -> str:
    """The hl7apy library that lays out this version's ACK (hl7apy has no 2.7.1)."""
    if version in SUPPORTED_LIBRARIES:
        return version
    return "2.7" if version == "2.7.1" else ACK_FALLBACK_VERSION


@cache
def _template(version: str, with_error: bool, msa_text: bool) -> tuple[tuple[str, ...], str]:
    """Let hl7apy lay out MSH and MSA for this version, with tokens as values.

    Returned as alternating literal text and token names, so filling it is one join and a
    value can never be mistaken for a token; and the truncation character hl7apy declares
    in MSH-2 for 2.7+ (`#`), which values must then escape as \\P\\.
    """
    msg = HlMessage("ACK", version=_library_version(version))
    msh = msg.msh
    msh.msh_3 = "QQSNDAPPQQ"
    msh.msh_4 = "QQSNDFACQQ"
    msh.msh_5 = "QQRCVAPPQQ"
    msh.msh_6 = "QQRCVFACQQ"
    msh.msh_7 = "QQMSGTIMEQQ"
    msh.msh_9 = "QQMSGTYPEQQ"
    msh.msh_10 = "QQCTRLIDQQ"
    msh.msh_11 = "QQPROCIDQQ"
    msh.msh_12 = "QQVERSIONQQ"
    msg.msa.msa_1 = "QQACKCODEQQ"
    msg.msa.msa_2 = "QQREFIDQQ"
    if msa_text:
        msg.msa.msa_3 = "QQMSATEXTQQ"
    er7 = msg.to_er7()
    if with_error:
        # ERR is laid out by position here: hl7apy's 2.8 library has no ERR-1 (withdrawn),
        # and its writer then shifts every ERR field one place left (ERR-2 lands in ERR-1).
        if version in _ERR1_VERSIONS:
            # ERR-1 ELD: segment id ^ sequence ^ field position ^ code&text&table (CE)
            er7 += "\rERR|QQERRSEGQQ^QQERRSEQQQ^QQERRFLDQQ^QQERRCODEQQ&QQERRTEXTQQ&HL70357"
        else:
            # ERR-2 location, ERR-3 HL7 error code (CWE), ERR-4 severity, ERR-8 user message
            er7 += "\rERR||QQERRLOCQQ|QQERRCODEQQ^QQERRTEXTQQ^HL70357|E||||QQERRMSGQQ"
    truncation = er7[8] if er7[8] != "|" else ""
    return tuple(_TOKEN.split(er7)), truncation


_counter = itertools.count(1)
_prefix = f"{os.getpid() % 1000:03d}"


def _ack_control_id() -> str:
    """Unique across processes and restarts, and within MSH-10's 20 characters."""
    return f"A{_prefix}{int(time.time() * 1000):011x}{next(_counter) % 100000:05d}"


def build_ack(
    code: str,
    header: Header,
    *,
    our_application: str,
    our_facility: str,
    now: datetime,
    zone: ZoneInfo,
    error: AckIssue | None = None,
    warnings: Sequence[AckIssue] = (),
) -> str:
    """An ER7 ACK (segments joined by \\r) answering `header` with AA, AE or AR.

    `warnings` (what was accepted but not kept exactly as sent) follow as ERR segments of
    severity W from 2.5 on, where ERR-4 exists; before 2.5 they are only on the inbound row.
    """
    version = header.version if header.version in SUPPORTED_VERSIONS else ACK_FALLBACK_VERSION
    msa_text = error is not None and version not in _NO_MSA3_VERSIONS
    template, trunc = _template(version, error is not None, msa_text)
    trigger = header.trigger if header.trigger.isalnum() else ""
    if not trigger:
        msg_type = "ACK"
    elif version == "2.3":
        msg_type = f"ACK^{trigger}"  # MSG-3 (message structure) arrived in 2.3.1
    else:
        msg_type = f"ACK^{trigger}^ACK"
    routing = header.routing
    if routing is not None and len(routing) == 4 and any(routing[2:]):
        sender_app, sender_fac = _hd(routing[2], trunc), _hd(routing[3], trunc)
    else:
        sender_app = escape(header.receiving_application, trunc)
        sender_fac = escape(header.receiving_facility, trunc)
    if routing is not None and len(routing) == 4:
        receiver_app, receiver_fac = _hd(routing[0], trunc), _hd(routing[1], trunc)
    else:
        receiver_app = escape(header.sending_application, trunc)
        receiver_fac = escape(header.sending_facility, trunc)
    values = {
        "SNDAPP": sender_app or escape(our_application, trunc),
        "SNDFAC": sender_fac or escape(our_facility, trunc),
        "RCVAPP": receiver_app,
        "RCVFAC": receiver_fac,
        "MSGTIME": now.astimezone(zone).strftime("%Y%m%d%H%M%S%z"),
        "MSGTYPE": msg_type,
        "CTRLID": _ack_control_id(),
        "PROCID": escape(header.processing_id or "P", trunc),
        "VERSION": version,
        "ACKCODE": code,
        "REFID": escape(header.control_id, trunc),
    }
    if error is not None:
        segment = error.segment if error.segment and error.segment.isalnum() else ""
        position = str(error.field) if segment and error.field else ""
        values.update(
            MSATEXT=_text(error.text, trunc, _MSA3_MAX),
            ERRSEG=segment,
            ERRSEQ="1" if segment else "",
            ERRFLD=position,
            ERRLOC=f"{segment}^1^{position}".rstrip("^") if segment else "",
            ERRCODE=str(error.code),
            ERRTEXT=_text(ERROR_TEXT.get(error.code, "Application error"), trunc),
            ERRMSG=_text(error.text, trunc),
        )
    out = list(template)
    for i in range(1, len(out), 2):
        out[i] = values[out[i]]
    segments = "".join(out).split("\r")
    if version not in _ERR1_VERSIONS:
        segments += [_warning(w, trunc) for w in warnings[:MAX_WARNINGS]]
    # Empty trailing fields are dropped, as HL7's encoding rules ask.
    return "\r".join(seg.rstrip("|") for seg in segments)


MAX_WARNINGS = 10  # ERR segments of severity W in one ACK; the row keeps them all


def _warning(issue: AckIssue, trunc: str) -> str:
    """ERR-2 location, ERR-3 code (CWE), ERR-4 severity W, ERR-8 user message."""
    segment = issue.segment if issue.segment and issue.segment.isalnum() else ""
    position = str(issue.field) if segment and issue.field else ""
    location = f"{segment}^1^{position}".rstrip("^") if segment else ""
    code = f"{issue.code}^{_text(ERROR_TEXT.get(issue.code, 'Application error'), trunc)}^HL70357"
    return f"ERR||{location}|{code}|W||||{_text(issue.text, trunc)}"


def build_batch_ack(
    acks: Sequence[str],
    *,
    file_header: str | None,
    batch_header: str | None,
    our_application: str,
    our_facility: str,
    now: datetime,
    zone: ZoneInfo,
) -> str:
    """The answer to a batch (HL7 v2.5.1 section 2.10.3, batch acknowledgment): a batch of
    our own holding the ACK of every message inside, in order. BHS-12 (and FHS-12 when the
    sender wrapped a file) names the sender's BHS-11 (FHS-11); BTS-1 counts the ACKs."""
    when = now.astimezone(zone).strftime("%Y%m%d%H%M%S%z")
    segments = []
    if file_header is not None:
        segments.append(_envelope("FHS", file_header, our_application, our_facility, when))
    segments.append(_envelope("BHS", batch_header or "", our_application, our_facility, when))
    segments += [seg for ack in acks for seg in ack.split("\r")]
    segments.append(f"BTS|{len(acks)}")
    if file_header is not None:
        segments.append("FTS|1")
    return "\r".join(segments)


def _envelope(name: str, theirs: str, our_application: str, our_facility: str,
              when: str) -> str:
    """Our FHS/BHS mirroring the sender's: the routing turned round, their control id
    (field 11) as our reference (field 12)."""
    sep = theirs[3] if len(theirs) > 3 else "|"
    fields = theirs.split(sep)

    def their(n: int) -> str:  # field n of their header; fields[1] is field 2 (encoding)
        value = fields[n - 1] if 1 < n <= len(fields) else ""
        return value.replace("|", "\\F\\") if sep != "|" else value

    return "|".join([
        name, "^~\\&", their(5) or escape(our_application), their(6) or escape(our_facility),
        their(3), their(4), when, "", "", "", _ack_control_id(), their(11),
    ]).rstrip("|")
