"""The one path: store the raw input, apply its event, commit, and only then answer.

HL7 over MLLP, HL7 files, FHIR resources and replays all come through here, each input in
one transaction: the raw bytes, the outcome, the ACK and every effect commit together.
"""

from __future__ import annotations

import hashlib
import logging
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.core.clock import Clock
from engine.core.errors import EngineError
from engine.core.events import (
    HARMLESS,
    HARMLESS_WHILE_SENT,
    REFUSED_WHY,
    SUPPORTED,
    AdtEvent,
    EventError,
)
from engine.core.site import SiteProfile
from engine.core.vocabulary import Channel, InputOutcome
from engine.hl7.ack import AckIssue, Header, build_ack, build_batch_ack, issue_for
from engine.hl7.adt import Hl7Refusal, check_envelope, header_of, to_event
from engine.hl7.framing import is_batch, unbatch
from engine.hl7.message import Hl7ParseError, Message, decode, parse
from engine.intake import encounters
from engine.planning import evaluation
from engine.planning.active import ActiveRules
from engine.storage import locks
from engine.storage.models import InboundMessage

log = logging.getLogger("engine.intake")

QUARANTINED = (InputOutcome.ERROR, InputOutcome.REJECTED, InputOutcome.PARTIAL)
# Partial bytes (a cut frame, a 4 KB head) are kept but never re-run.
REPLAYABLE = (InputOutcome.ERROR, InputOutcome.REJECTED)
_ACK_CODES: dict[str, str] = {
    InputOutcome.ACCEPTED: "AA", InputOutcome.IGNORED: "AA", InputOutcome.REJECTED: "AR"}
FhirMapper = Callable[[bytes], list[AdtEvent]]
# A write's condition, checked in its transaction: raise to refuse, a reason to apply nothing.
Precondition = Callable[[Session], str | None]
# Built once: every input asks it, and building a statement costs more than running it.
_TWIN = (select(InboundMessage).where(InboundMessage.sender == bindparam("sender"),
                                      InboundMessage.control_id == bindparam("control_id"))
         .order_by(InboundMessage.id))
_LINES = re.compile(r"\r\n|\r|\n")
_FRAMING = "\x0b\x1c\r\n\t \ufeff"


def content_digest(raw: bytes) -> str:
    """What a resend must repeat: the message minus MSH-7 (senders restamp the send time on
    a retransmission) and minus line-ending and framing differences. A reused MSH-10 whose
    digest differs is a new message (senders reset their counters), not a duplicate."""
    lines = [line for line in _LINES.split(decode(raw).strip(_FRAMING)) if line]
    if lines and lines[0].startswith("MSH") and len(lines[0]) > 3:
        fields = lines[0].split(lines[0][3])
        if len(fields) > 6:
            fields[6] = ""
        lines[0] = lines[0][3].join(fields)
    return hashlib.sha256("\r".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of one input. `ack` is the HL7 answer (empty for FHIR inputs)."""

    outcome: str  # accepted | duplicate | ignored | error | rejected | unavailable
    ack: str
    message_id: int | None
    reason: str | None = None
    patient_id: int | None = None
    encounter_id: int | None = None
    warnings: str | None = None  # applied, with these notes (one per line; ERR severity W)

    @property
    def ack_code(self) -> str:
        return _ACK_CODES.get(self.outcome, "AE")


def _salvage_header(text: str) -> Header:
    """Best effort MSH read from a message that failed to parse, so the AR can echo MSH-10."""
    if not text.startswith("MSH") or len(text) < 4:
        return Header()
    first = text.replace("\n", "\r").split("\r", 1)[0]
    fields = first.split(text[3])
    get = lambda i: fields[i] if i < len(fields) else ""  # noqa: E731
    return Header(get(2), get(3), get(4), get(5), get(9)[:200], get(11)[:20],
                  get(8).split("^")[1] if "^" in get(8) else "", get(10) or "P")


class Intake:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        site: SiteProfile,
        clock: Clock,
        fhir_mapper: FhirMapper | None = None,
        max_bytes: int = 1_048_576,
        rules: ActiveRules | None = None,
    ) -> None:
        self.sessions = sessions
        self.site = site
        self.clock = clock
        self.fhir_mapper = fhir_mapper
        self.max_bytes = max_bytes
        # The rulesets in force (the runtime's holder; a fresh one without rules otherwise).
        self.rules = rules if rules is not None else ActiveRules()

    # -- HL7 ------------------------------------------------------------------------------
    def hl7(self, raw: bytes, channel: str = Channel.MLLP) -> Receipt:
        if len(raw) > self.max_bytes:
            error = AckIssue(207, f"message exceeds the {self.max_bytes}-byte limit")
            return self.refuse_raw(raw, channel, error)
        if is_batch(raw):
            return self._batch(raw, channel)
        now = self.clock.now()
        msg, header, failure = self._read(raw)
        for attempt in range(3):
            try:
                return self._hl7_once(raw, channel, msg, header, failure, now)
            except IntegrityError as exc:
                if attempt < 2:
                    continue  # a concurrent twin won the insert: answer as a duplicate
                log.error("message refused by a store constraint: %s", type(exc).__name__)
                error = AckIssue(205, "the message conflicts with stored data; kept for review")
                return self.refuse_raw(raw, channel, error, code="AE", header=header)
            except DataError as exc:
                # A value the store cannot hold: keep the bytes, refuse the message (AE).
                log.error("message refused by the store: %s", type(exc).__name__)
                error = AckIssue(102, "a value in this message does not fit the store "
                                      "(too long or out of range); kept for review")
                return self.refuse_raw(raw, channel, error, code="AE", header=header)
            except SQLAlchemyError as exc:
                log.error("storage unavailable; message not acknowledged: %s", type(exc).__name__)
                error = AckIssue(207, "storage unavailable; message not stored, please resend")
                return Receipt(InputOutcome.UNAVAILABLE, self._ack("AE", header, now, error), None,
                               error.text)
        raise AssertionError("unreachable")

    def _batch(self, raw: bytes, channel: str) -> Receipt:
        """An FHS/BHS batch: each message inside is answered and stored on its own, and the
        answer is a batch of their ACKs (HL7 v2.5.1 2.10.3), in order."""
        batch = unbatch(raw)
        receipts = [self.hl7(message, channel) for message in batch.messages]
        ack = build_batch_ack(
            [r.ack for r in receipts],
            file_header=decode(batch.file_header) if batch.file_header is not None else None,
            batch_header=decode(batch.batch_header) if batch.batch_header is not None else None,
            our_application=self.site.receiving_application,
            our_facility=self.site.receiving_facility,
            now=self.clock.now(),
            zone=self.site.zone,
        )
        failed = [r for r in receipts if r.ack_code != "AA"]
        outcome = failed[0].outcome if failed else InputOutcome.ACCEPTED
        reason = f"batch of {len(receipts)} message(s), {len(failed)} not accepted"
        return Receipt(outcome, ack, None, reason)

    def _hl7_once(self, raw, channel, msg, header, failure, now) -> Receipt:
        # An unreadable message has no trustworthy MSH-10: its salvaged id is echoed in the
        # AR but never used to recognise duplicates.
        keyed = failure is None and bool(header.control_id)
        sender = f"{header.sending_application}|{header.sending_facility}" if keyed else ""
        digest = content_digest(raw) if keyed else None
        try:
            with self.sessions() as session, session.begin():
                if keyed:
                    twin = self._twin(session, sender, header.control_id, digest)
                    if twin is not None:
                        twin.duplicates += 1
                        return self._receipt(twin, outcome=InputOutcome.DUPLICATE)
                row = self._new_row(raw, channel, header, sender, now, digest)
                session.add(row)
                self._process_hl7(session, row, msg, header, failure, now)
                session.flush()
                return self._receipt(row)
        except _Undo as undo:
            # The event's effects were rolled back; keep the input and the refusal.
            with self.sessions() as session, session.begin():
                row = self._new_row(raw, channel, header, sender, now, digest)
                session.add(row)
                self._describe(row, msg, header)
                self._refuse(row, undo.code, undo.error)
                row.ack = self._ack(undo.code, header, now, undo.error)
                session.flush()
                return self._receipt(row)

    @staticmethod
    def _new_row(raw: bytes, channel: str, header: Header, sender: str, now,
                 digest: str | None) -> InboundMessage:
        keyed = bool(sender and header.control_id)
        return InboundMessage(
            channel=channel,
            sender=sender if keyed else None,
            control_id=header.control_id if keyed else None,
            content_digest=digest if keyed else None,
            received_at=now,
            raw=raw,
            outcome="pending",
            duplicates=0,
            attempts=1,
        )

    @staticmethod
    def _twin(session: Session, sender: str, control_id: str,
              digest: str | None) -> InboundMessage | None:
        """The stored input this one repeats: same sender and id, and (HL7) same content;
        `digest` None (FHIR) matches on the id alone."""
        for row in session.scalars(_TWIN, {"sender": sender, "control_id": control_id}):
            if digest is None or digest == (row.content_digest if row.content_digest is not None
                                            else content_digest(row.raw)):
                return row
        return None

    @staticmethod
    def _describe(row: InboundMessage, msg: Message | None, header: Header) -> None:
        row.message_type = (msg.msh.value(9, 1)[:20] if msg else None) or None
        row.trigger = header.trigger[:20] or None
        row.version = header.version[:20] or None

    def _process_hl7(self, session, row: InboundMessage, msg, header: Header, failure, now):
        """Fill in the row's outcome and ACK; raise _Undo if applying failed half-way."""
        self._describe(row, msg, header)
        try:
            if failure is not None:
                raise failure
            notes: list[AckIssue] = []
            check_envelope(msg, header, self.site, notes)
            if (key := HARMLESS_WHILE_SENT.get(header.trigger)) and not _sent(msg, *key):
                raise Hl7Refusal("AR", AckIssue(201, (
                    f"{header.trigger} changes an identifier that keys the record when "
                    f"{key[0]}-{key[1]} is empty (PID-18 for a stay, PID-2/PID-4 for a "
                    f"patient): send {key[0]}-{key[1]}, or A50/A47 with MRG"), "MSH", 9))
            if header.trigger in HARMLESS:
                row.outcome = InputOutcome.IGNORED
                row.reason = f"{header.trigger} {HARMLESS[header.trigger]}"
                row.ack = self._ack("AA", header, now, warnings=notes)
                return
            if header.trigger not in SUPPORTED:
                raise Hl7Refusal("AR", AckIssue(201, _unsupported(header.trigger), "MSH", 9))
            event = to_event(msg, header, self.site, notes)
            row.event_time = event.event_time
        except Hl7Refusal as refusal:
            self._refuse(row, refusal.ack_code, refusal.error)
            row.ack = self._ack(refusal.ack_code, header, now, refusal.error)
            return
        notes += (AckIssue(101, w, "PV1", 19) for w in self._apply(session, row, [event]))
        # Accepted, but not kept exactly as sent: the operator can list these
        # (`engine hl7 warnings`) and the sender sees them as ERR severity W.
        row.warnings = "\n".join(n.text for n in notes) or None
        row.ack = self._ack("AA", header, now, warnings=notes)

    def _ack(self, code: str, header: Header, now: datetime, error: AckIssue | None = None,
             warnings: list[AckIssue] | None = None) -> str:
        return build_ack(
            code,
            header,
            our_application=self.site.receiving_application,
            our_facility=self.site.receiving_facility,
            now=now,
            zone=self.site.zone,
            error=error,
            warnings=warnings or (),
        )

    # -- FHIR and other pre-mapped inputs -------------------------------------------------
    def events(
        self,
        raw: bytes,
        *,
        channel: str,
        sender: str | None,
        control_id: str | None,
        events: list[AdtEvent] | None,
        error: str | None = None,
        ignored: str | None = None,
        precondition: Precondition | None = None,
    ) -> Receipt:
        """Store and apply events mapped from a FHIR input; `error` quarantines it instead,
        `ignored` (why there is nothing to apply) stores it as ignored.

        `precondition` (a write's If-Match or If-None-Exist) runs in the same transaction,
        under the events' locks, before anything applies: it raises an engine error to
        refuse (nothing is stored: the caller keeps the input with the refusal), returns why
        the input applies nothing (stored as ignored), or None to apply it.
        """
        now = self.clock.now()
        header = Header(control_id=control_id or "")

        def new_row() -> InboundMessage:
            row = self._new_row(raw, channel, header, sender or "", now, "")
            row.message_type = channel.upper()
            if events:
                row.trigger = events[0].trigger
                row.event_time = max(e.event_time for e in events)
            return row

        try:
            with self.sessions() as session, session.begin():
                if sender and control_id:
                    twin = self._twin(session, sender, control_id, None)
                    if twin is not None:
                        twin.duplicates += 1
                        return self._receipt(twin, outcome=InputOutcome.DUPLICATE)
                row = new_row()
                session.add(row)
                if error is not None or events is None:
                    self._refuse(row, "AR", AckIssue(102, error or "no events"))
                else:
                    if ignored is None and precondition is not None:
                        locks.lock(session, *(n for e in events for n in
                                              encounters.lock_names(e)))
                        ignored = precondition(session)
                    if ignored is not None:
                        row.outcome, row.reason = InputOutcome.IGNORED, ignored
                    else:
                        self._apply(session, row, events)
                session.flush()
                return self._receipt(row)
        except _Undo as undo:
            with self.sessions() as session, session.begin():
                row = new_row()
                session.add(row)
                self._refuse(row, undo.code, undo.error)
                session.flush()
                return self._receipt(row)

    # -- shared ---------------------------------------------------------------------------
    def _apply(self, session: Session, row: InboundMessage,
               events: list[AdtEvent]) -> list[str]:
        """Apply every event of one input, or raise _Undo so the transaction rolls back; the
        warnings of applying (a stay the input did not name)."""
        now = self.clock.now()
        try:
            touched: list = []
            for i, event in enumerate(events):
                if i:
                    session.flush()  # later events must see what earlier ones created
                applied = encounters.apply(session, event, now, row)
                row.patient = applied.patient
                row.encounter = applied.encounter
                touched.append(applied)
            rulebook = self.rules.current
            if rulebook is not None:
                evaluation.after_events(session, rulebook, touched, now)
        except Hl7Refusal as refusal:
            raise _Undo(refusal.ack_code, refusal.error) from refusal
        except SQLAlchemyError:
            raise
        except Exception as exc:  # a bug must not lose the message: keep it for replay
            answer = issue_for(exc) if isinstance(exc, EngineError) else None
            if answer is not None:  # an engine error the HL7 edge answers (AE 207 and why)
                raise _Undo(*answer) from exc
            where = traceback.extract_tb(exc.__traceback__)[-1]
            # The exception's text may quote patient data: log its type and place only.
            log.error("internal error %s at %s:%s; input kept for replay",
                      type(exc).__name__, where.filename, where.lineno)
            raise _Undo("AE", AckIssue(207, f"internal error ({type(exc).__name__}); kept for "
                                            "replay")) from exc
        row.outcome = InputOutcome.ACCEPTED
        row.reason = None
        return [a.warning for a in touched if a.warning]

    @staticmethod
    def _refuse(row: InboundMessage, code: str, error: AckIssue) -> None:
        row.outcome = InputOutcome.REJECTED if code == "AR" else InputOutcome.ERROR
        row.reason = error.text
        row.warnings = None
        row.patient = None
        row.encounter = None

    @staticmethod
    def _receipt(row: InboundMessage, outcome: str | None = None) -> Receipt:
        return Receipt(
            outcome or row.outcome,
            row.ack or "",
            row.id,
            row.reason,
            row.patient_id,
            row.encounter_id,
            row.warnings,
        )

    def refuse_raw(self, raw: bytes, channel: str, error: AckIssue, *, code: str = "AR",
                   header: Header | None = None, partial: bool = False) -> Receipt:
        """Keep input that could not take the normal path (oversize, stray bytes) and refuse it.

        `partial` bytes are not the whole input (a cut frame, the head of an oversize one):
        they are listed in the quarantine but never replayed, since applying them would apply
        half a message.
        """
        now = self.clock.now()
        header = header or _salvage_header(decode(raw))
        ack = self._ack(code, header, now, error)
        try:
            with self.sessions() as session, session.begin():
                row = InboundMessage(
                    channel=channel, sender=None, control_id=None, received_at=now, raw=raw,
                    outcome=(InputOutcome.PARTIAL if partial else InputOutcome.REJECTED
                             if code == "AR" else InputOutcome.ERROR),
                    reason=error.text, ack=ack,
                    duplicates=0, attempts=1,
                )
                session.add(row)
                session.flush()
                return self._receipt(row)
        except SQLAlchemyError as exc:
            log.error("storage unavailable; refused input not kept: %s", type(exc).__name__)
            return Receipt(InputOutcome.UNAVAILABLE, ack, None, error.text)

    # -- quarantine -----------------------------------------------------------------------
    def replay(self, message_id: int) -> Receipt:
        """Run a quarantined input through the path again (after a fix to data or profile)."""
        now = self.clock.now()
        try:
            with self.sessions() as session, session.begin():
                row = session.get(InboundMessage, message_id, with_for_update=True)
                if row is None:
                    raise LookupError(f"no inbound message with id {message_id}")
                if row.outcome not in REPLAYABLE:
                    return self._receipt(row)
                row.attempts += 1
                if row.channel == Channel.FHIR:
                    self._replay_fhir(session, row)
                else:
                    msg, header, failure = self._read(row.raw)
                    self._process_hl7(session, row, msg, header, failure, now)
                session.flush()
                return self._receipt(row)
        except _Undo as undo:
            with self.sessions() as session, session.begin():
                row = session.get(InboundMessage, message_id, with_for_update=True)
                assert row is not None
                row.attempts += 1
                self._refuse(row, undo.code, undo.error)
                if row.channel != Channel.FHIR:
                    _msg, header, _failure = self._read(row.raw)
                    row.ack = self._ack(undo.code, header, now, undo.error)
                return self._receipt(row)

    def _replay_fhir(self, session: Session, row: InboundMessage) -> None:
        if self.fhir_mapper is None:
            raise RuntimeError("FHIR replay needs the FHIR mapper")
        try:
            events = self.fhir_mapper(row.raw)
        except EventError as exc:
            self._refuse(row, "AR", AckIssue(102, str(exc)))
            return
        self._apply(session, row, events)

    @staticmethod
    def _read(raw: bytes) -> tuple[Message | None, Header, Hl7Refusal | None]:
        text = decode(raw)
        try:
            msg = parse(text)
            return msg, header_of(msg), None
        except Hl7ParseError as exc:
            return None, _salvage_header(text), Hl7Refusal("AR", AckIssue(exc.code, str(exc)))


def _sent(msg: Message, segment: str, field: int) -> bool:
    """Whether the message carries this field (so the fallback keys are not in play)."""
    seg = msg.segment(segment)
    return seg is not None and bool(seg.value(field))


def _unsupported(trigger: str) -> str:
    why = REFUSED_WHY.get(trigger, "it is not an ADT trigger this engine applies")
    return f"event {trigger or '(none)'} refused: {why}; kept for replay"


class _Undo(Exception):
    """Applying failed after effects began: roll the transaction back, keep the input.

    Control flow inside Intake only (it carries the ACK already decided), never seen outside
    it, so it stays outside engine.core.errors."""

    def __init__(self, code: str, error: AckIssue) -> None:
        super().__init__(error.text)
        self.code = code
        self.error = error
