"""The one path: store the raw input, apply its event, commit, and only then answer.

HL7 over MLLP, HL7 files, FHIR resources and replays all come through here, each input in
one transaction: the raw bytes, the outcome, the ACK and every effect commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine import encounters
from engine.clock import Clock
from engine.events import SUPPORTED, AdtEvent, EventError
from engine.hl7.ack import AckError, Header, build_ack
from engine.hl7.adt import Hl7Refusal, check_envelope, header_of, to_event
from engine.hl7.message import Hl7ParseError, Message, decode, parse
from engine.site import SiteProfile
from engine.storage.models import InboundMessage

log = logging.getLogger("engine.intake")

QUARANTINED = ("error", "rejected")
FhirMapper = Callable[[bytes], list[AdtEvent]]


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of one input. `ack` is the HL7 answer (empty for FHIR inputs)."""

    outcome: str  # accepted | duplicate | ignored | error | rejected | unavailable
    ack: str
    message_id: int | None
    reason: str | None = None
    patient_id: int | None = None
    encounter_id: int | None = None

    @property
    def ack_code(self) -> str:
        return {"accepted": "AA", "ignored": "AA", "rejected": "AR"}.get(self.outcome, "AE")


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
    ) -> None:
        self.sessions = sessions
        self.site = site
        self.clock = clock
        self.fhir_mapper = fhir_mapper

    # -- HL7 ------------------------------------------------------------------------------
    def hl7(self, raw: bytes, channel: str = "mllp") -> Receipt:
        now = self.clock.now()
        text = decode(raw)
        msg: Message | None
        try:
            msg = parse(text)
            header = header_of(msg)
            failure = None
        except Hl7ParseError as exc:
            msg, header = None, _salvage_header(text)
            failure = Hl7Refusal("AR", AckError(102 if text.startswith("MSH") else 100, str(exc)))
        for attempt in range(3):
            try:
                return self._hl7_once(raw, channel, msg, header, failure, now)
            except IntegrityError:
                if attempt == 2:
                    raise
                continue  # a concurrent twin won the insert: answer as a duplicate
            except SQLAlchemyError as exc:
                log.error("storage unavailable; message not acknowledged: %s", type(exc).__name__)
                error = AckError(207, "storage unavailable; message not stored, please resend")
                return Receipt("unavailable", self._ack("AE", header, now, error), None,
                               error.text)
        raise AssertionError("unreachable")

    def _hl7_once(self, raw, channel, msg, header, failure, now) -> Receipt:
        sender = f"{header.sending_application}|{header.sending_facility}"
        with self.sessions() as session, session.begin():
            if header.control_id:
                twin = self._twin(session, sender, header.control_id)
                if twin is not None:
                    twin.duplicates += 1
                    return self._receipt(twin, outcome="duplicate")
            row = InboundMessage(
                channel=channel,
                sender=sender if header.control_id else None,
                control_id=header.control_id or None,
                received_at=now,
                raw=raw,
                outcome="pending",
                duplicates=0,
                attempts=1,
            )
            session.add(row)
            session.flush()
            self._process_hl7(session, row, msg, header, failure, now)
            return self._receipt(row)

    @staticmethod
    def _twin(session: Session, sender: str, control_id: str) -> InboundMessage | None:
        return session.scalars(
            select(InboundMessage).where(
                InboundMessage.sender == sender, InboundMessage.control_id == control_id
            )
        ).first()

    def _process_hl7(self, session, row: InboundMessage, msg, header: Header, failure, now):
        row.message_type = (msg.msh.value(9, 1) if msg else None) or None
        row.trigger = header.trigger or None
        row.version = header.version[:20] or None
        try:
            if failure is not None:
                raise failure
            check_envelope(msg, header, self.site)
            if header.trigger not in SUPPORTED:
                row.outcome = "ignored"
                row.reason = f"trigger event {header.trigger or '(none)'} is not used by this engine"
                row.ack = self._ack("AA", header, now)
                return
            event = to_event(msg, header, self.site)
            row.event_time = event.event_time
            self._apply(session, row, [event], now)
            row.ack = self._ack("AA", header, now)
        except Hl7Refusal as refusal:
            self._refuse(row, refusal.ack_code, refusal.error)
            row.ack = self._ack(refusal.ack_code, header, now, refusal.error)
        except EventError as exc:
            error = AckError(207, str(exc))
            self._refuse(row, "AE", error)
            row.ack = self._ack("AE", header, now, error)
        except SQLAlchemyError:
            raise
        except Exception as exc:  # a bug must not lose the message: keep it for replay
            log.exception("internal error applying message id=%s", row.id)
            error = AckError(207, f"internal error ({type(exc).__name__}); kept for replay")
            self._refuse(row, "AE", error)
            row.ack = self._ack("AE", header, now, error)

    def _ack(self, code: str, header: Header, now: datetime, error: AckError | None = None) -> str:
        return build_ack(
            code,
            header,
            our_application=self.site.receiving_application,
            our_facility=self.site.receiving_facility,
            now=now,
            zone=self.site.zone,
            error=error,
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
    ) -> Receipt:
        """Store and apply events mapped from a FHIR input; `error` quarantines it instead."""
        now = self.clock.now()
        with self.sessions() as session, session.begin():
            if sender and control_id:
                twin = self._twin(session, sender, control_id)
                if twin is not None:
                    twin.duplicates += 1
                    return self._receipt(twin, outcome="duplicate")
            row = InboundMessage(
                channel=channel,
                sender=sender if control_id else None,
                control_id=control_id,
                message_type=channel.upper(),
                received_at=now,
                raw=raw,
                outcome="pending",
                duplicates=0,
                attempts=1,
            )
            session.add(row)
            session.flush()
            self._process_events(session, row, events, error, now)
            return self._receipt(row)

    def _process_events(self, session, row, events, error, now) -> None:
        if error is not None or events is None:
            self._refuse(row, "AR", AckError(102, error or "no events"))
            return
        try:
            if events:
                row.trigger = events[0].trigger
                row.event_time = max(e.event_time for e in events)
            self._apply(session, row, events, now)
        except EventError as exc:
            self._refuse(row, "AE", AckError(207, str(exc)))

    # -- shared ---------------------------------------------------------------------------
    def _apply(self, session: Session, row: InboundMessage, events: list[AdtEvent], now) -> None:
        with session.begin_nested():
            for event in events:
                applied = encounters.apply(session, event, now, row.id)
                row.patient_id = applied.patient.id
                row.encounter_id = applied.encounter.id if applied.encounter else None
        row.outcome = "accepted"
        row.reason = None

    @staticmethod
    def _refuse(row: InboundMessage, code: str, error: AckError) -> None:
        row.outcome = "rejected" if code == "AR" else "error"
        row.reason = error.text
        row.patient_id = None
        row.encounter_id = None

    @staticmethod
    def _receipt(row: InboundMessage, outcome: str | None = None) -> Receipt:
        return Receipt(
            outcome or row.outcome,
            row.ack or "",
            row.id,
            row.reason,
            row.patient_id,
            row.encounter_id,
        )

    def refuse_raw(self, raw: bytes, channel: str, error: AckError) -> Receipt:
        """Keep input that never reached the parser (oversize, stray bytes) and answer AR."""
        now = self.clock.now()
        header = _salvage_header(decode(raw))
        ack = self._ack("AR", header, now, error)
        try:
            with self.sessions() as session, session.begin():
                row = InboundMessage(
                    channel=channel, sender=None, control_id=None, received_at=now, raw=raw,
                    outcome="rejected", reason=error.text, ack=ack, duplicates=0, attempts=1,
                )
                session.add(row)
                session.flush()
                return self._receipt(row)
        except SQLAlchemyError as exc:
            log.error("storage unavailable; refused input not kept: %s", type(exc).__name__)
            return Receipt("unavailable", ack, None, error.text)

    # -- quarantine -----------------------------------------------------------------------
    def replay(self, message_id: int) -> Receipt:
        """Run a quarantined input through the path again (after a fix to data or profile)."""
        now = self.clock.now()
        with self.sessions() as session, session.begin():
            row = session.get(InboundMessage, message_id, with_for_update=True)
            if row is None:
                raise LookupError(f"no inbound message with id {message_id}")
            if row.outcome not in QUARANTINED:
                return self._receipt(row)
            row.attempts += 1
            if row.channel == "fhir":
                if self.fhir_mapper is None:
                    raise RuntimeError("FHIR replay needs the FHIR mapper")
                try:
                    events, error = self.fhir_mapper(row.raw), None
                except EventError as exc:
                    events, error = None, str(exc)
                self._process_events(session, row, events, error, now)
                return self._receipt(row)
            text = decode(row.raw)
            try:
                msg = parse(text)
                header, failure = header_of(msg), None
            except Hl7ParseError as exc:
                msg, header = None, _salvage_header(text)
                failure = Hl7Refusal("AR", AckError(102, str(exc)))
            self._process_hl7(session, row, msg, header, failure, now)
            return self._receipt(row)
