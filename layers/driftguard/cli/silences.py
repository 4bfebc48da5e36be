"""Silence commands: silence, unsilence, silences.

A silence mutes the notices of the alerts its matchers select until it ends; the alerts still
move through their lifecycle and are recorded. Every notification carries the exact `silence`
command that mutes its alerts.
"""

from __future__ import annotations

import getpass
import os
from datetime import datetime, timedelta

import click

from driftguard.alerts import expire, extend, new_silence, parse_matcher
from driftguard.alerts.silences import format_matcher
from driftguard.cli.common import CliContext, UserError, json_option, now, parse_time, pass_cli, print_json
from driftguard.config import Config, parse_duration
from driftguard.errors import ConfigError
from driftguard.model import CheckKind, Matcher, Severity, Silence
from driftguard.store import Store


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _whoami() -> str:
    """$USER, else what the system says (other variables, then the password database)."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except OSError:
        return "unknown"


def _now() -> datetime:
    return now().replace(microsecond=0)


def _find(store: Store, ident: str) -> Silence:
    """The silence with this id, or the only one whose id starts with it."""
    found = [s for s in store.silences() if s.id == ident] or [
        s for s in store.silences() if s.id.startswith(ident)
    ]
    if not found:
        raise UserError(f"no silence with id {ident!r}; `driftguard silences --all` lists them")
    if len(found) > 1:
        raise UserError(f"{ident!r} is the start of {len(found)} silence ids; give more of the id")
    return found[0]


def _end(duration: timedelta | None, until: str | None, now: datetime) -> datetime:
    if (duration is None) == (until is None):
        raise click.UsageError("give exactly one of --duration (e.g. 2h) or --until (an ISO 8601 time)")
    if duration is not None:
        return now + duration
    assert until is not None
    return parse_time(until, now=now, param="--until")


def _describe(s: Silence, now: datetime) -> dict[str, object]:
    status = "active" if s.active(now) else ("scheduled" if s.starts_at > now else "expired")
    return {
        "id": s.id,
        "status": status,
        "matchers": [format_matcher(m) for m in s.matchers],
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "created_by": s.created_by,
        "comment": s.comment,
    }


def _report(cli: CliContext, verb: str, silence: Silence, now: datetime, as_json: bool) -> None:
    if as_json:
        print_json(_describe(silence, now))
        return
    from driftguard.cli.text import esc

    matchers = esc(", ".join(format_matcher(m) for m in silence.matchers))
    cli.console.print(
        f"{verb} silence [bold]{silence.id}[/bold] ({matchers}), ending {silence.ends_at.isoformat()}"
    )


@click.command()
@click.option("--source", default=None, help="Only alerts of this source.")
@click.option("--table", default=None, help="Only alerts about this table (of any source, unless --source).")
@click.option(
    "--check", type=click.Choice([k.value for k in CheckKind]), default=None, help="Only this kind of check."
)
@click.option("--tag", default=None, help="Only alerts of sources with this tag.")
@click.option("--owner", default=None, help="Only alerts of sources with this owner.")
@click.option(
    "--severity", type=click.Choice([s.value for s in Severity]), default=None, help="Only this severity."
)
@click.option(
    "--match",
    "matches",
    multiple=True,
    metavar="LABEL=VALUE|LABEL=~REGEX",
    help="Any matcher, repeatable: label=value, label!=value, label=~regex, label!~regex on source, "
    "table, check, metric, column, severity, owner or tag. Regexes are fully anchored.",
)
@click.option("--duration", callback=_duration, default=None, help="How long, e.g. 30m, 2h, 1d.")
@click.option("--until", default=None, help="Until when (ISO 8601, UTC when no offset).")
@click.option("--comment", default=None, help="Why (shown to whoever finds the alert muted).")
@click.option("--author", default=lambda: _whoami(), help="Who (default: $USER).")
@click.option(
    "--extend", "extend_id", default=None, metavar="ID", help="Make silence ID last longer instead."
)
@json_option
@pass_cli
def silence(
    cli: CliContext,
    source: str | None,
    table: str | None,
    check: str | None,
    tag: str | None,
    owner: str | None,
    severity: str | None,
    matches: tuple[str, ...],
    duration: timedelta | None,
    until: str | None,
    comment: str | None,
    author: str,
    extend_id: str | None,
    as_json: bool,
) -> None:
    """Mute the notices of matching alerts for a while (they still change state).

    Matchers combine (all must hold) and may select alerts across sources, e.g. by tag or owner.
    Exact names are checked against the config: a typo is an error, not a silence of nothing.

    \b
    driftguard silence --source orders_db --table orders --duration 2h --comment "backfill"
    driftguard silence --tag tier-2 --severity warning --until 2024-05-01T18:00Z --comment "..."
    driftguard silence --extend 3f2a9c --duration 2h      (keep it until 2h from now)
    """
    now = _now()
    end = _end(duration, until, now)
    exact = {
        "source": source,
        "table": table,
        "check": check,
        "tag": tag,
        "owner": owner,
        "severity": severity,
    }
    if extend_id is not None:
        if any(v is not None for v in exact.values()) or matches or comment:
            raise click.UsageError(
                "--extend changes only when a silence ends: give it --duration or --until alone"
            )
        try:
            longer = extend(_find(cli.reader, extend_id), end)
        except ValueError as e:
            raise UserError(str(e)) from None
        cli.store.put_silence(longer)
        _report(cli, "Extended", longer, now, as_json)
        return
    if all(v is None for v in exact.values()) and not matches:
        raise click.UsageError(
            "say which alerts to silence: --source, --table, --check, --tag, --owner, --severity or --match"
        )
    if comment is None:
        raise click.UsageError('--comment is required: say why, e.g. --comment "nightly backfill"')
    _check_names(cli.config, source=source, table=table, tag=tag, owner=owner)
    try:
        matchers = [Matcher(label=k, value=v) for k, v in exact.items() if v is not None]
        matchers += [parse_matcher(text) for text in matches]
        created = new_silence(matchers, created_by=author, comment=comment, now=now, ends_at=end)
    except ValueError as e:
        raise UserError(str(e)) from None
    cli.store.put_silence(created)
    _report(cli, "Created", created, now, as_json)


def _check_names(
    config: Config, *, source: str | None, table: str | None, tag: str | None, owner: str | None
) -> None:
    """Exact names must exist in the config: a silence of a misspelt name would silence nothing."""
    try:
        sources = [config.source(source)] if source else list(config.sources)
    except ConfigError as e:
        raise UserError(str(e)) from None
    tables = {t.name for s in sources for t in s.tables}
    where = f"source {source}" if source else "any source"
    if table is not None and table not in tables:
        raise UserError(
            f"--table {table!r}: no table of that name in {where}; tables: {', '.join(sorted(tables))}"
        )
    tags = {t for s in config.sources for t in s.tags}
    if tag is not None and tag not in tags:
        raise UserError(
            f"--tag {tag!r}: no source has this tag; tags in use: {', '.join(sorted(tags)) or 'none'}"
        )
    owners = {s.owner for s in config.sources if s.owner}
    if owner is not None and owner not in owners:
        raise UserError(
            f"--owner {owner!r}: no source has this owner; owners: {', '.join(sorted(owners)) or 'none'}"
        )


@click.command()
@click.argument("silence_id", metavar="ID")
@click.option("--purge", is_flag=True, help="Delete it from the record instead of ending it now.")
@json_option
@pass_cli
def unsilence(cli: CliContext, silence_id: str, purge: bool, as_json: bool) -> None:
    """End silence ID now (it stays listed under `silences --all`), or delete it with --purge."""
    found = _find(cli.reader, silence_id)
    if purge:
        cli.reader.delete_silence(found.id)
        if as_json:
            print_json({"id": found.id, "status": "deleted"})
        else:
            cli.console.print(f"Deleted silence {found.id}")
        return
    now = _now()
    ended = expire(found, now)
    cli.reader.put_silence(ended)
    _report(cli, "Ended", ended, now, as_json)


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Also list silences that have ended.")
@json_option
@pass_cli
def silences(cli: CliContext, show_all: bool, as_json: bool) -> None:
    """List silences that are active or scheduled (with --all: every silence)."""
    from rich.table import Table

    from driftguard.cli.text import esc

    now = _now()
    listed = sorted(
        (s for s in cli.reader.silences() if show_all or s.ends_at > now),
        key=lambda s: (s.starts_at, s.ends_at, s.id),
    )
    rows = [_describe(s, now) for s in listed]
    if as_json:
        print_json(rows)
        return
    if not rows:
        cli.console.print("No silences." if show_all else "No active silences (--all lists ended ones).")
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=16)  # whole: it is what `unsilence` takes
    for heading in ("status", "matchers", "starts", "ends", "author", "comment"):
        table.add_column(heading)
    for s, row in zip(listed, rows, strict=True):
        table.add_row(
            s.id,
            str(row["status"]),
            esc(", ".join(format_matcher(m) for m in s.matchers)),
            s.starts_at.strftime("%Y-%m-%d %H:%M"),
            s.ends_at.strftime("%Y-%m-%d %H:%M"),
            esc(s.created_by),
            esc(s.comment),
        )
    cli.console.print(table)


commands: list[click.Command] = [silence, unsilence, silences]
