"""`engine users ...` and `engine clients ...`: who may sign in, managed from the shell.

Passwords come from standard input (a prompt without echo on a terminal, else the first
line), never from the command line where `ps` and shell history would keep them. A
client's secret is generated and printed once.
"""

from __future__ import annotations

# Each command imports the floors it needs when it runs (ruff PLC0415 is waived for this
# module in pyproject.toml): `engine --help` and the quick commands start in about half the
# time the whole server, app, simulator and case runner take to import.
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from engine.core.config import get_settings
from engine.core.roles import ROLES
from engine.security import passwords, users

users_app = typer.Typer(no_args_is_help=True, help="People who sign in (one role each).")
clients_app = typer.Typer(no_args_is_help=True,
                          help="Systems (the EHR, interface engines) using client credentials.")
out = Console(soft_wrap=True)


@contextmanager
def _accounts() -> Iterator[sessionmaker[Session]]:
    """Sessions on the configured database (upgraded if needed; no rules loaded)."""
    from engine.api.runtime import Runtime

    settings = get_settings()
    passwords.configure(settings.password_hash_time_cost, settings.password_hash_memory_kib)
    runtime = Runtime.open(settings.model_copy(update={"rulesets": None}))
    try:
        yield runtime.sessions
    finally:
        runtime.close()


def read_password(confirm: bool = True) -> str:
    """The new password: prompted twice without echo on a terminal, else stdin's first line."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Again: ") != first:
            raise users.AccountError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


@users_app.command("add")
def add_user(
    name: Annotated[str, typer.Argument(help="Sign-in name, e.g. jsmith.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    display_name: Annotated[str | None, typer.Option(help="Full name shown on pages.")] = None,
) -> None:
    """Add a person; the password is read from standard input."""
    if role not in ROLES:
        raise users.AccountError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    password = read_password()
    with _accounts() as sessions:
        account = users.add_user(sessions, name, role, password, display_name)
    out.print(f"added user {account.name} ({account.role})", highlight=False)


@users_app.command("passwd")
def passwd(name: Annotated[str, typer.Argument()]) -> None:
    """Set a new password (read from standard input); signs the person out everywhere."""
    password = read_password()
    with _accounts() as sessions:
        users.set_password(sessions, name, password)
    out.print(f"password changed for {name}; earlier tokens and sessions no longer work",
              highlight=False)


def _set_active(kind: users.Kind, name: str, active: bool) -> None:
    with _accounts() as sessions:
        users.set_active(sessions, kind, name, active)
    state = "enabled" if active else "disabled; its tokens and sessions no longer work"
    out.print(f"{kind} {name} {state}", highlight=False)


@users_app.command("disable")
def disable_user(name: Annotated[str, typer.Argument()]) -> None:
    """Disable a person (revokes their tokens and web sessions at once)."""
    _set_active("user", name, False)


@users_app.command("enable")
def enable_user(name: Annotated[str, typer.Argument()]) -> None:
    """Enable a disabled person again."""
    _set_active("user", name, True)


def _table(kind: users.Kind) -> None:
    with _accounts() as sessions:
        rows = users.accounts(sessions, kind)
    table = Table("name", "role", "active",
                  "display name" if kind == "user" else "scope", "created")
    for a in rows:
        table.add_row(a.name, a.role, "yes" if a.active else "no",
                      (a.display_name or "") if kind == "user" else " ".join(a.scopes),
                      a.created_at.strftime("%Y-%m-%d %H:%M") if a.created_at else "")
    out.print(table)


@users_app.command("list")
def list_users() -> None:
    """Every person, active or not."""
    _table("user")


@clients_app.command("add")
def add_client(
    name: Annotated[str, typer.Argument(help="The client_id, e.g. epic-prod.")],
    scope: Annotated[str, typer.Option(help="Space-separated permissions the client may use, "
                                            "e.g. 'patient:read encounter:write'.")],
    role: Annotated[str, typer.Option(help="Role whose permissions the scope narrows.")] =
    "integration",
) -> None:
    """Add a system; its secret is printed once (only a hash is kept)."""
    with _accounts() as sessions:
        account, secret = users.add_client(sessions, name, scope, role)
    out.print(f"added client {account.name} ({account.role}; scope {' '.join(account.scopes)})",
              highlight=False)
    out.print(f"client_secret: {secret}", highlight=False)
    out.print("store it now: it is not shown again", highlight=False)


@clients_app.command("rotate")
def rotate_client(name: Annotated[str, typer.Argument()]) -> None:
    """Give a client a new secret (printed once); tokens from the old one stop working."""
    with _accounts() as sessions:
        secret = users.new_secret(sessions, name)
    out.print(f"client_secret: {secret}", highlight=False)
    out.print("store it now: it is not shown again", highlight=False)


@clients_app.command("list")
def list_clients() -> None:
    """Every client, active or not."""
    _table("client")


@clients_app.command("disable")
def disable_client(name: Annotated[str, typer.Argument()]) -> None:
    """Disable a client (revokes its tokens at once)."""
    _set_active("client", name, False)


@clients_app.command("enable")
def enable_client(name: Annotated[str, typer.Argument()]) -> None:
    """Enable a disabled client again."""
    _set_active("client", name, True)
