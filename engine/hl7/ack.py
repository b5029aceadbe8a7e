"""ACK/NACK messages: shaped once by hl7apy per version family, filled in per message.

Building an hl7apy Message per ACK costs ~2 ms; filling a template it produced costs
microseconds, and tests parse our ACKs back with hl7apy to prove them well-formed.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from hl7apy.core import Message as HlMessage

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
    "2.3 2.3.1 2.4 2.5 2.5.1 2.6 2.7 2.7.1 2.8 2.8.1 2.8.2".split()
)
ACK_FALLBACK_VERSION = "2.5.1"
_TOKENS = ("SNDAPP", "SNDFAC", "RCVAPP", "RCVFAC", "MSGTIME", "MSGTYPE", "CTRLID", "PROCID",
           "ACKCODE", "REFID", "MSATEXT", "ERRLOC", "ERRCODE", "ERRTEXT", "ERRMSG")


def _tok(name: str) -> str:
    return f"QQ{name}QQ"


@dataclass(frozen=True, slots=True)
class AckError:
    """Why a message was not accepted, in HL7 table 0357 terms plus words a person can act on."""

    code: int
    text: str
    segment: str | None = None
    field: int | None = None


@dataclass(frozen=True, slots=True)
class Header:
    """The MSH facts an ACK mirrors; fields are '' when the message did not carry them."""

    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    control_id: str = ""
    version: str = ""
    trigger: str = ""
    processing_id: str = "P"


def _family(version: str) -> str:
    """ERR changed shape in 2.5; 2.7+ only withdrew MSA-3, so it shares the 2.5.1 layout."""
    return "2.3" if version in ("2.3", "2.3.1", "2.4") else "2.5.1"


@lru_cache(maxsize=8)
def _template(family: str, with_error: bool, msa_text: bool) -> str:
    """Let hl7apy lay out MSH, MSA and ERR for this version family, with tokens as values."""
    msg = HlMessage("ACK", version=family)
    msh = msg.msh
    msh.msh_3 = _tok("SNDAPP")
    msh.msh_4 = _tok("SNDFAC")
    msh.msh_5 = _tok("RCVAPP")
    msh.msh_6 = _tok("RCVFAC")
    msh.msh_7 = _tok("MSGTIME")
    msh.msh_9 = _tok("MSGTYPE")
    msh.msh_10 = _tok("CTRLID")
    msh.msh_11 = _tok("PROCID")
    msg.msa.msa_1 = _tok("ACKCODE")
    msg.msa.msa_2 = _tok("REFID")
    if msa_text:
        msg.msa.msa_3 = _tok("MSATEXT")
    if with_error:
        err = msg.add_segment("ERR")
        if family == "2.3":
            err.err_1 = f"{_tok('ERRLOC')}^{_tok('ERRCODE')}&{_tok('ERRTEXT')}&HL70357"
        else:
            err.err_2 = _tok("ERRLOC")
            err.err_3 = f"{_tok('ERRCODE')}^{_tok('ERRTEXT')}^HL70357"
            err.err_4 = "E"
            err.err_8 = _tok("ERRMSG")
    return msg.to_er7()


def escape(value: str) -> str:
    """Escape HL7 delimiters in free text so a reason can never break the ACK's structure."""
    value = value.replace("\\", "\\E\\")
    value = value.replace("|", "\\F\\").replace("^", "\\S\\")
    value = value.replace("&", "\\T\\").replace("~", "\\R\\")
    return " ".join(value.split())


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
    error: AckError | None = None,
) -> str:
    """An ER7 ACK (segments joined by \\r) answering `header` with AA, AE or AR."""
    version = header.version if header.version in SUPPORTED_VERSIONS else ACK_FALLBACK_VERSION
    family = _family(version)
    msa_text = error is not None and not version.startswith(("2.7", "2.8"))
    template = _template(family, error is not None, msa_text)
    trigger = header.trigger if header.trigger.isalnum() else ""
    if not trigger:
        msg_type = "ACK"
    elif version == "2.3":
        msg_type = f"ACK^{trigger}"
    else:
        msg_type = f"ACK^{trigger}^ACK"
    values = {
        "SNDAPP": escape(header.receiving_application or our_application),
        "SNDFAC": escape(header.receiving_facility or our_facility),
        "RCVAPP": escape(header.sending_application),
        "RCVFAC": escape(header.sending_facility),
        "MSGTIME": now.astimezone(zone).strftime("%Y%m%d%H%M%S%z"),
        "MSGTYPE": msg_type,
        "CTRLID": _ack_control_id(),
        "PROCID": escape(header.processing_id or "P"),
        "ACKCODE": code,
        "REFID": escape(header.control_id),
        "MSATEXT": escape(error.text) if error else "",
    }
    if error is not None:
        loc = ""
        if error.segment:
            loc = f"{error.segment}^1^{error.field}" if error.field else error.segment
        values.update(
            ERRLOC=loc,
            ERRCODE=str(error.code),
            ERRTEXT=escape(ERROR_TEXT.get(error.code, "Application error")),
            ERRMSG=escape(error.text),
        )
    out = template
    for key in _TOKENS:
        if key in values:
            out = out.replace(_tok(key), values[key])
    # hl7apy writes the version it was built with; mirror the sender's.
    if family != version:
        out = out.replace(f"|{family}\r", f"|{version}\r", 1)
    return "\r".join(seg.rstrip("|") for seg in out.split("\r"))
