"""Roles and what each may do: least privilege, one table, checked on every request.

A permission names one capability. Endpoints and pages ask for a permission, never for a
role, so changing what a role may do is an edit here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class Permission(StrEnum):
    PATIENT_READ = "patient:read"  # patients, encounters, flags, scores, proposals, tasks
    ENCOUNTER_WRITE = "encounter:write"  # FHIR POST/PUT Encounter and Bundles (the EHR feed)
    TASK_WORK = "task:work"  # start, complete, decline, note tasks
    TASK_ASSIGN = "task:assign"  # reassign tasks and patients to people (supervisors)
    WORKLIST_ALL = "worklist:all"  # see every person's worklist and caseload
    WEB_UI = "web:ui"  # sign in to the web worklist
    RULES_READ = "rules:read"
    RULES_RELOAD = "rules:reload"
    AUDIT_READ = "audit:read"
    USERS_MANAGE = "users:manage"
    UR_WRITE = "ur:write"  # reviews, payer authorizations and communications, avoidable days
    BARRIER_WRITE = "barrier:write"  # open, correct and resolve discharge barriers
    METRICS_READ = "metrics:read"  # the department's numbers (aggregates, no patient rows)


ROLES: dict[str, frozenset[Permission]] = {
    "case_manager": frozenset({Permission.PATIENT_READ, Permission.TASK_WORK, Permission.WEB_UI,
                               Permission.BARRIER_WRITE}),
    "ur_nurse": frozenset({Permission.PATIENT_READ, Permission.TASK_WORK, Permission.WEB_UI,
                           Permission.UR_WRITE}),
    "supervisor": frozenset(
        {
            Permission.PATIENT_READ,
            Permission.TASK_WORK,
            Permission.TASK_ASSIGN,
            Permission.WORKLIST_ALL,
            Permission.WEB_UI,
            Permission.METRICS_READ,
        }
    ),
    # directors read the department's numbers, not patients' records
    "director": frozenset({Permission.METRICS_READ, Permission.WEB_UI}),
    "informaticist": frozenset({Permission.RULES_READ, Permission.RULES_RELOAD, Permission.WEB_UI}),
    # systems such as the EHR: FHIR only, never the web UI
    "integration": frozenset(
        {
            Permission.PATIENT_READ,
            Permission.ENCOUNTER_WRITE,
            Permission.TASK_WORK,
            Permission.WORKLIST_ALL,
            Permission.UR_WRITE,  # an authorization number arriving from the payer portal
        }
    ),
    "admin": frozenset(
        {
            Permission.AUDIT_READ,
            Permission.USERS_MANAGE,
            Permission.RULES_READ,
            Permission.RULES_RELOAD,
            Permission.WEB_UI,
        }
    ),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    name: str
    kind: Literal["user", "client"]
    role: str
    # a token's granted scopes narrow its role's permissions (a client's always, a person's
    # when they asked for less); empty: the whole role (web sessions)
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def permissions(self) -> frozenset[Permission]:
        granted = ROLES.get(self.role, frozenset())
        if self.scopes:
            granted = frozenset(p for p in granted if p.value in self.scopes)
        return granted

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions
