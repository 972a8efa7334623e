"""`optarena keys`: API keys, made and revoked on the server's database. It needs the server
installed, so it joins the client's `optarena` command as a plug-in (entry point group
`optarena.cli`)."""

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

keys = typer.Typer(
    help="API keys, made and revoked on the server's database (OPTARENA_DATABASE_URL).",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


def _key_sessions() -> Any:
    from core.db import make_engine, make_session_factory
    from core.settings import get_settings

    return make_session_factory(make_engine(get_settings().database_url))


@keys.command("create")
def keys_create(
    owner: Annotated[str, typer.Option(help="Whose jobs this key submits and sees.")],
    admin: Annotated[bool, typer.Option(help="See and manage every owner's jobs.")] = False,
) -> None:
    """Make a key and print it once: it is stored only as a hash."""
    from core.db import transaction
    from core.keys import KeyRepository

    try:
        with transaction(_key_sessions()) as session:
            key, secret = KeyRepository(session).create(owner=owner, admin=admin)
            role = "admin" if key.admin else "user"
            ident = key.id
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    err.print(f"key {ident} for {owner} ({role}); it is shown only now:", highlight=False)
    print(secret)


@keys.command("list")
def keys_list(
    owner: Annotated[str | None, typer.Option(help="Only this owner's keys.")] = None,
) -> None:
    """Keys by id and prefix (never the secret), with owner, role and whether revoked."""
    from core.keys import KeyRepository

    with _key_sessions()() as session:
        rows = KeyRepository(session).all(owner=owner)
    table = Table("id", "prefix", "owner", "role", "created", "revoked")
    for key in rows:
        table.add_row(
            str(key.id),
            key.prefix,
            key.owner,
            "admin" if key.admin else "user",
            key.created_at.isoformat(timespec="seconds"),
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    out.print(table)


@keys.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or prefix (keys list shows both).")],
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from core.db import transaction
    from core.keys import KeyRepository

    with transaction(_key_sessions()) as session:
        revoked = [str(k.id) for k in KeyRepository(session).revoke(key)]
    if not revoked:
        raise typer.BadParameter(f"no live key with id or prefix {key!r}")
    out.print(f"revoked {', '.join(revoked)}")
