"""Payer authorizations of a stay and every exchange with the payer about them.

An authorization carries the payer's reference number, its status, what was approved (level
of care, days or a through-date), the payer's reviewer and contact and, on a denial, the
peer-to-peer and the appeal with its deadline. The rules read the approved through-date (a
task comes due before the last approved day) and an appeal's deadline.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core import limits
from engine.core import ur_record as codes
from engine.core.roles import Permission, Principal
from engine.core.site import SiteProfile
from engine.storage.models import (
    Encounter,
    PayerAuthorization,
    PayerCommunication,
    RecordRevision,
)
from engine.work.ur_record import revisions
from engine.work.ur_record.inputs import (
    AuthorizationInput,
    CommunicationInput,
    code,
    instant,
    text,
)
from engine.work.ur_record.problems import RecordInvalid, RecordNotFound, permitted
from engine.work.ur_record.stay import admission_day, days_of

FEED = "feed"  # the source of a number IN1-14 sent
_SKEW = timedelta(minutes=5)  # clocks differ: a call "now" on a fast PC is still now
MAX_APPROVED_DAYS = 365  # one authorization never approves more; beyond is a typing slip


def _prior_through(session: Session, encounter_id: int, but: int | None = None) -> date | None:
    """The last day already approved on the stay by its other authorizations: more days
    approved later count from the day after it, as payers extend a stay."""
    query = select(func.max(PayerAuthorization.approved_through)).where(
        PayerAuthorization.encounter_id == encounter_id, PayerAuthorization.voided_at.is_(None))
    if but is not None:
        query = query.where(PayerAuthorization.id != but)
    return session.scalar(query)


def _checked(data: AuthorizationInput, encounter: Encounter, site: SiteProfile,
             now: datetime, prior_through: date | None = None) -> dict:
    code("status", data.status, codes.AUTHORIZATION_STATUSES)
    code("level_of_care", data.level_of_care, codes.LEVELS_OF_CARE, required=False)
    code("peer_to_peer", data.peer_to_peer, codes.PEER_TO_PEER, required=False)
    code("peer_to_peer_outcome", data.peer_to_peer_outcome, codes.PEER_TO_PEER_OUTCOMES,
         required=False)
    code("appeal_outcome", data.appeal_outcome, codes.APPEAL_OUTCOMES, required=False)
    for field in ("requested_at", "decided_at", "peer_to_peer_at"):
        instant(field, getattr(data, field))
    stay = days_of(encounter, now, site.zone)
    admitted = admission_day(encounter, stay, site.zone)
    extends = prior_through + timedelta(days=1) if prior_through is not None else None
    first: date | None
    if data.approved_from is not None:
        first = data.approved_from
    elif extends is not None and (data.approved_through is None
                                  or data.approved_through >= extends):
        first = extends  # more days: from the day after those already approved
    else:
        first = admitted
    through = data.approved_through
    if data.approved_days is not None:
        if not 1 <= data.approved_days <= MAX_APPROVED_DAYS:
            raise RecordInvalid("approved_days", "approved days must be 1 or more, at most "
                                                 f"{MAX_APPROVED_DAYS}")
        if first is None:
            raise RecordInvalid("approved_from", "approved days need the first approved day "
                                                 "(the admission is not known yet)")
        counted = first + timedelta(days=data.approved_days - 1)
        if through is not None and through != counted:
            raise RecordInvalid("approved_through", f"{data.approved_days} approved days from "
                                f"{first.isoformat()} end on {counted.isoformat()}, not "
                                f"{through.isoformat()}: give one or make them agree")
        through = counted
    if through is not None and first is not None and through < first:
        since = ("the first approved day" if data.approved_from or first != admitted
                 else "the admission")
        raise RecordInvalid("approved_through", f"the approved through-date "
                            f"{through.isoformat()} is before {since} on {first.isoformat()}")
    if data.approved_from is not None and stay.first and data.approved_from < stay.first:
        stay.check("approved_from", data.approved_from, "the first approved day")
    if data.approved_from is not None and stay.discharged and data.approved_from > stay.last:
        stay.check("approved_from", data.approved_from, "the first approved day")
    if data.status in codes.APPROVING and through is None:
        raise RecordInvalid("approved_days", "an approval needs the approved days or the "
                                             "approved through-date")
    # Days approved stay approved while an extension is pended or the continued stay is
    # denied: the approved period is kept on any status (clear it to take the days back).
    if data.status == "denied" and not text(data.denial_reason, 500, field="denial_reason"):
        raise RecordInvalid("denial_reason", "a denial needs the payer's reason")
    if data.peer_to_peer_outcome and data.peer_to_peer != "held":
        raise RecordInvalid("peer_to_peer_outcome", "a peer-to-peer outcome needs the "
                                                    "peer-to-peer held")
    if data.peer_to_peer_at is not None and data.peer_to_peer in (None, "not_requested"):
        raise RecordInvalid("peer_to_peer", "a peer-to-peer time needs the peer-to-peer "
                                            "scheduled or held")
    if (data.peer_to_peer == "held" and data.peer_to_peer_at is not None
            and data.peer_to_peer_at > now + _SKEW):
        raise RecordInvalid("peer_to_peer_at", "a peer-to-peer that was held has a time in "
                                               "the past; a later one is scheduled")
    if data.appeal_outcome and data.appeal_level is None:
        raise RecordInvalid("appeal_level", "an appeal outcome needs the appeal level")
    if data.appeal_level is not None and not 1 <= data.appeal_level <= codes.MAX_APPEAL_LEVEL:
        raise RecordInvalid("appeal_level", f"appeal level is 1 to {codes.MAX_APPEAL_LEVEL}")
    if data.appeal_level is not None and data.appeal_deadline is None:
        raise RecordInvalid("appeal_deadline", "an appeal needs its filing deadline")
    if data.appeal_deadline is not None and data.appeal_level is None:
        raise RecordInvalid("appeal_level", "an appeal deadline needs the appeal level")
    for field in ("requested_at", "decided_at", "peer_to_peer_at"):
        moment = getattr(data, field)
        if moment is not None and moment > now + _SKEW and field != "peer_to_peer_at":
            raise RecordInvalid(field, f"{field.replace('_', ' ')} is in the future")
    if data.requested_at and data.decided_at and data.decided_at < data.requested_at:
        raise RecordInvalid("decided_at", "the payer decided before the request was sent")
    values = asdict(data)
    values.update(approved_from=first if through is not None else data.approved_from,
                  approved_through=through,
                  approved_days=(data.approved_days if data.approved_days is not None
                                 else (through - first).days + 1
                                 if through is not None and first is not None else None),
                  reference_number=text(data.reference_number, limits.AUTH,
                                        field="reference_number"),
                  payer=text(data.payer, limits.PAYER, field="payer") or encounter.payer_name,
                  plan=text(data.plan, limits.PLAN, field="plan") or encounter.payer_plan,
                  payer_reviewer=text(data.payer_reviewer, 200, field="payer_reviewer"),
                  payer_contact=text(data.payer_contact, 200, field="payer_contact"),
                  denial_reason=text(data.denial_reason, 500, field="denial_reason"))
    return values


def record(session: Session, encounter: Encounter, data: AuthorizationInput,
           actor: Principal | str, now: datetime, site: SiteProfile, *, source: str = "web"
           ) -> PayerAuthorization:
    """Keep an authorization (the caller holds the visit lock and re-evaluates after)."""
    who = permitted(actor, Permission.UR_WRITE)
    auth = PayerAuthorization(encounter_id=encounter.id, source=source, entered_by=who,
                              entered_at=now, updated_by=who, updated_at=now, version=1,
                              **_checked(data, encounter, site, now,
                                         _prior_through(session, encounter.id)))
    session.add(auth)
    session.flush()
    return auth


def update(session: Session, auth: PayerAuthorization, encounter: Encounter,
           data: AuthorizationInput, actor: Principal | str, now: datetime,
           site: SiteProfile, *, reason: str | None = None,
           expected_version: int | None = None) -> bool:
    """A new status, approval, denial, peer-to-peer or appeal; the state before is kept."""
    who = permitted(actor, Permission.UR_WRITE)
    values = _checked(data, encounter, site, now, _prior_through(session, encounter.id, auth.id))
    return revisions.revise(session, auth, values, who, now,
                            reason, expected_version)


def communicate(session: Session, encounter: Encounter, auth: PayerAuthorization | None,
                data: CommunicationInput, actor: Principal | str, now: datetime
                ) -> PayerCommunication:
    """Log an exchange with the payer (on an authorization, or on the stay before one)."""
    who = permitted(actor, Permission.UR_WRITE)
    code("direction", data.direction, codes.DIRECTIONS)
    code("channel", data.channel, codes.CHANNELS)
    if auth is not None and auth.encounter_id != encounter.id:
        raise RecordInvalid("authorization_id", "that authorization is not of this stay")
    if auth is not None and auth.voided_at is not None:
        raise RecordInvalid("authorization_id", "that authorization was voided")
    summary = text(data.summary, 20000, field="summary")
    if not summary:
        raise RecordInvalid("summary", "say what was sent or said")
    instant("at", data.at)
    if data.at > now + _SKEW:
        raise RecordInvalid("at", "the communication's time is in the future")
    entry = PayerCommunication(encounter_id=encounter.id,
                               authorization_id=auth.id if auth else None, at=data.at,
                               direction=data.direction, channel=data.channel, summary=summary,
                               entered_by=who, entered_at=now, updated_by=who, updated_at=now,
                               version=1)
    session.add(entry)
    session.flush()
    return entry


def seed_from_feed(session: Session, encounter: Encounter, number: str | None,
                   now: datetime) -> PayerAuthorization | None:
    """IN1-14 sent an authorization number: open the stay's authorization with it (pending
    until UR records the payer's determination), or put it on the one authorization UR
    opened without a number; a number already on file is left alone."""
    number = (number or "").strip()[:limits.AUTH]
    if not number:
        return None
    known = session.scalars(select(PayerAuthorization.id).where(
        PayerAuthorization.encounter_id == encounter.id,
        PayerAuthorization.reference_number == number)).first()
    if known is not None or _corrected_away(session, encounter.id, number):
        return None
    numberless = session.scalars(select(PayerAuthorization).where(
        PayerAuthorization.encounter_id == encounter.id, PayerAuthorization.voided_at.is_(None),
        PayerAuthorization.reference_number.is_(None)).order_by(PayerAuthorization.id)).all()
    if len(numberless) == 1:  # UR opened the request before the payer's number came
        revisions.revise(session, numberless[0], {"reference_number": number}, FEED, now,
                         "authorization number from the feed (IN1-14)")
        return numberless[0]
    auth = PayerAuthorization(encounter_id=encounter.id, reference_number=number,
                              status="pending", payer=encounter.payer_name,
                              plan=encounter.payer_plan, source=FEED, entered_by=FEED,
                              entered_at=now, updated_by=FEED, updated_at=now, version=1)
    session.add(auth)
    session.flush()  # sessions do not autoflush: the next message's check must see it
    return auth


def _corrected_away(session: Session, encounter_id: int, number: str) -> bool:
    """UR corrected the number the feed keeps sending: it is on file, in the history."""
    bodies = session.scalars(select(RecordRevision.body).where(
        RecordRevision.kind == PayerAuthorization.__tablename__,
        RecordRevision.encounter_id == encounter_id))
    return any(body.get("reference_number") == number for body in bodies)


def of_stay(session: Session, encounter_id: int, *, voided: bool = False
            ) -> list[PayerAuthorization]:
    query = select(PayerAuthorization).where(PayerAuthorization.encounter_id == encounter_id)
    if not voided:
        query = query.where(PayerAuthorization.voided_at.is_(None))
    return list(session.scalars(query.order_by(PayerAuthorization.id)))


def communications(session: Session, encounter_id: int, *, voided: bool = False
                   ) -> list[PayerCommunication]:
    query = select(PayerCommunication).where(PayerCommunication.encounter_id == encounter_id)
    if not voided:
        query = query.where(PayerCommunication.voided_at.is_(None))
    return list(session.scalars(query.order_by(PayerCommunication.at)))


def communication(session: Session, encounter_id: int, entry_id: int) -> PayerCommunication:
    entry = session.get(PayerCommunication, entry_id)
    if entry is None or entry.encounter_id != encounter_id:
        raise RecordNotFound(f"no payer communication {entry_id} on this stay")
    return entry


def get(session: Session, encounter_id: int, auth_id: int) -> PayerAuthorization:
    auth = session.get(PayerAuthorization, auth_id)
    if auth is None or auth.encounter_id != encounter_id:
        raise RecordNotFound(f"no authorization {auth_id} on this stay")
    return auth
