"""ttsctl: the operator's CLI. Every change runs a playbook through ansible-runner, under the
release lock, recorded in the audit log by the playbook run itself.

Exit codes: 0 done, 1 the change failed, 2 usage error or refused input (nothing changed),
3 another change holds the release lock.
"""
from __future__ import annotations

import dataclasses
import getpass
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from ttsctl import audit, clock, free_text, lock, records, render, runner
from ttsctl.progress import Progress
from ttsctl.settings import Settings
from ttsctl.webhook import webhook

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_LOCKED = 0, 1, 2, 3
EXIT_FOR_RESULT = {"ok": EXIT_OK, "refused": EXIT_REFUSED}


@dataclass
class Options:
    """What the user said, from the group's options and the command's (the command's win)."""
    inventory: str | None = None
    operator: str | None = None
    reason: str | None = None
    dry_run: bool = False
    yes: bool = False
    lock_timeout: float | None = None
    audit_db: str | None = None
    lock_file: str | None = None
    artifacts_dir: str | None = None
    keep_artifacts: int | None = None

    def settings(self) -> Settings:
        try:
            environment = Settings.from_env()
        except ValueError as exc:
            raise click.UsageError(f"{exc}; nothing was changed") from exc
        return environment.with_overrides(
            audit_db=self.audit_db, lock_file=self.lock_file, artifacts_dir=self.artifacts_dir,
            keep_artifacts=self.keep_artifacts, lock_timeout=self.lock_timeout)

    def inventory_path(self) -> str | None:
        """Absolute, as ansible-runner needs: from the current directory, else the project's."""
        if not self.inventory:
            return None
        path = Path(self.inventory).expanduser()
        if not path.is_absolute() and not path.exists():
            path = self.settings().project_dir / path
        return str(path.resolve())

    def who(self) -> str:
        named = self.operator or os.environ.get(free_text.OPERATOR_ENV) or getpass.getuser()
        return free_text.clean(named, free_text.OPERATOR_LIMIT) or "unknown"


def console(stderr: bool = False) -> Console:
    """Rich output; logs and pipes get lines long enough not to wrap every message."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def _remember(ctx: click.Context, param: click.Parameter, value):
    if value is not None and value is not False:
        setattr(ctx.ensure_object(Options), param.name, value)
    return value


def _option(*names, **kwargs):
    return click.option(*names, expose_value=False, callback=_remember, **kwargs)


INVENTORY = _option("-i", "--inventory", metavar="PATH",
                    help="Inventory to act on (default: ansible.cfg's, inventory/local).")
CHANGE_OPTIONS = [
    INVENTORY,
    _option("--operator", metavar="NAME",
            help="Who acts, for the release state and the audit log (default: $TTSCTL_OPERATOR, else the login name)."),
    _option("--reason", metavar="TEXT", help="Why; recorded with every change, required for promote and rollback."),
    _option("--dry-run", "dry_run", is_flag=True, default=None,
            help="Ansible check mode: show what would change, change nothing (no lock, no audit record)."),
    _option("-y", "--yes", is_flag=True, default=None, help="Answer yes to the confirmations risky steps ask on a terminal."),
    _option("--lock-timeout", type=click.FloatRange(min=0), metavar="SECONDS",
            help="How long to wait for another change to finish (default: $TTSCTL_LOCK_TIMEOUT, else 30)."),
]


def change_options(command):
    for option in reversed(CHANGE_OPTIONS):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@change_options
@_option("--audit-db", envvar="TTSCTL_AUDIT_DB", metavar="PATH",
         help="Audit log (SQLite) [env TTSCTL_AUDIT_DB; default /var/lib/ttsctl/audit.db].")
@_option("--lock-file", envvar="TTSCTL_LOCK_FILE", metavar="PATH",
         help="Release lock file [env TTSCTL_LOCK_FILE; default /var/lib/ttsctl/release.lock].")
@_option("--artifacts-dir", envvar="TTSCTL_ARTIFACTS_DIR", metavar="PATH",
         help="ansible-runner's private data dir [env TTSCTL_ARTIFACTS_DIR; default /var/lib/ttsctl/artifacts].")
@_option("--keep-artifacts", envvar="TTSCTL_KEEP_ARTIFACTS", type=click.IntRange(min=1), metavar="N",
         help="Artifact directories kept, newest first [env TTSCTL_KEEP_ARTIFACTS; default 50].")
@click.pass_context
def main(ctx: click.Context):
    """Blue/green and canary releases of the TTS service.

    \b
    Every change runs the matching playbook (playbooks/*.yml) through ansible-runner, one at
    a time under the release lock, and is recorded in the audit log ("ttsctl history").

    \b
    Exit codes: 0 done · 1 the change failed · 2 usage error or refused input (nothing
    changed) · 3 another change holds the release lock.
    """
    ctx.ensure_object(Options)


# -- reading ---------------------------------------------------------------------------------
@main.command()
@INVENTORY
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@click.pass_obj
def status(options: Options, as_json: bool):
    """Release state, HAProxy's view and every instance's /version, with any disagreement."""
    settings = options.settings()
    err = console(stderr=True)
    try:
        with err.status("reading the release status", spinner="dots"):
            outcome = runner.run_playbook(settings, "status", {}, inventory=options.inventory_path())
    except runner.RunFailed as exc:
        err.print(Text(f"✗ {exc}", style="bold red"))
        sys.exit(EXIT_FAILED)
    report = outcome.facts.get("release_status")
    if outcome.result != "ok" or report is None:
        err.print(Text(f"✗ status failed: {outcome.message or 'no report'} (artifacts {outcome.artifact_dir})",
                       style="bold red"))
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        console().print(render.status(report))


@main.command()
@click.option("--since", metavar="TIME", help="From this time: ISO 8601 (UTC) or an age such as 30m, 2h, 7d.")
@click.option("--until", metavar="TIME", help="Before this time (same forms).")
@click.option("--operator", "who", metavar="NAME", help="Only this operator's runs.")
@click.option("--action", "actions", multiple=True,
              type=click.Choice(records.STATE_CHANGING),
              help="Only these actions (repeat the option for several).")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="At most this many records, newest first (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Export the records as JSON.")
@click.option("--verify", is_flag=True,
              help="Check the log's hash chain instead: exit 1 when a record was rewritten, deleted or inserted.")
@click.pass_obj
def history(options: Options, since, until, who, actions, limit, as_json, verify):
    """Every recorded change, newest first: ttsctl's, raw playbooks' and the webhook's."""
    if verify:
        _verify(audit.AuditStore(options.settings().audit_db), as_json)
        return
    try:
        query = audit.Query(since=clock.stamp(clock.parse(since)) if since else None,
                            until=clock.stamp(clock.parse(until)) if until else None,
                            operator=who, actions=tuple(actions), limit=limit or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    rows = audit.AuditStore(options.settings().audit_db).query(query)
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
    elif not rows:
        console().print(Text("no recorded changes match", style="dim"))
    else:
        console().print(render.history(rows, alive=_record_alive))


def _verify(store: audit.AuditStore, as_json: bool) -> None:
    try:
        checked = store.verify()
    except FileNotFoundError:
        console(stderr=True).print(Text(f"✗ no audit log at {store.path}", style="bold red"))
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(checked), indent=2, sort_keys=True))
    else:
        console().print(render.verification(checked, store.path))
    sys.exit(EXIT_OK if checked.intact else EXIT_FAILED)


def _record_alive(record: dict) -> bool:
    if record.get("controller") != socket.gethostname():
        return True  # another control node's process: cannot tell from here
    return lock.process_alive(record.get("pid"))


# -- changing --------------------------------------------------------------------------------
@main.command()
@click.option("--version", "version", required=True, metavar="V", help="Model version to deploy, e.g. 2.0.")
@change_options
@click.pass_obj
def deploy(options: Options, version: str):
    """Put a version on the idle colour, parked at weight 0, and verify it."""
    _change(options, "deploy", {"version": version},
            confirm=f"Deploy {version} on the idle colour? It replaces the version kept there for rollback.")


@main.command()
@click.option("--weight", required=True, metavar="N", help="The candidate's share of traffic, 0-100.")
@change_options
@click.pass_obj
def canary(options: Options, weight: str):
    """Send N % of listeners to the candidate colour."""
    # Passed through as typed: the playbook judges it, so a bad weight is refused and
    # recorded exactly as a raw ansible-playbook run's would be.
    _change(options, "canary", {"weight": weight})


@main.command()
@change_options
@click.pass_obj
def promote(options: Options):
    """Make the candidate the active colour (100 %); the old colour stays up for rollback."""
    _change(options, "promote", {}, need_reason=True,
            confirm="Promote the candidate to 100 % of traffic?")


@main.command()
@change_options
@click.pass_obj
def rollback(options: Options):
    """All traffic back to the stable colour; the candidate is drained, then parked."""
    _change(options, "rollback", {}, need_reason=True)


def _interactive() -> bool:
    """Someone at a terminal who can answer a question."""
    return sys.stdin.isatty()


def _change(options: Options, playbook: str, parameters: dict, *, need_reason: bool = False,
            confirm: str | None = None) -> None:
    settings = options.settings()
    out = console()
    operator = options.who()
    interactive = _interactive()
    reason = free_text.clean(options.reason) or None
    if need_reason and not reason and interactive:
        reason = free_text.clean(click.prompt(f"Reason for the {playbook}", default="", show_default=False)) or None
    # Without a reason the playbook refuses: recorded as refused, like a raw run's.
    if confirm and interactive and not options.yes and not options.dry_run:
        if not click.confirm(confirm, default=False):
            out.print(Text(f"✗ {playbook} not confirmed; nothing was changed", style="yellow"))
            sys.exit(EXIT_REFUSED)
    header = Text(f"ttsctl {playbook}", style="bold")
    for key, value in parameters.items():
        header.append(f" {key}={value}")
    header.append(f"  as {operator}", style="dim")
    if reason:
        header.append(f"  because {reason!r}", style="dim")
    if options.dry_run:
        header.append("  DRY RUN (check mode)", style="bold yellow")
    out.print(header)
    progress = Progress(out, playbook)

    def waiting(holder: lock.Holder | None) -> None:
        who = holder.describe() if holder else "another process"
        out.print(Text(f"waiting up to {settings.lock_timeout:g} s for the release lock held by {who}",
                       style="yellow"))

    try:
        outcome = runner.run_playbook(settings, playbook, parameters, check=options.dry_run,
                                      inventory=options.inventory_path(), on_event=progress,
                                      operator=operator, reason=reason, on_lock_wait=waiting)
    except free_text.Rejected as exc:
        progress.close()
        console(stderr=True).print(Text(f"✗ {exc}", style="bold red"))
        sys.exit(EXIT_REFUSED)
    except lock.LockHeld as held:
        progress.close()
        console(stderr=True).print(Text(
            f"✗ {held}; waited {held.waited:.0f} s. Nothing was changed: try again when it is done "
            f"(--lock-timeout to wait longer).", style="bold red"))
        sys.exit(EXIT_LOCKED)
    except runner.RunFailed as exc:
        progress.close()
        console(stderr=True).print(Text(f"✗ {exc}", style="bold red"))
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        progress.close()
        console(stderr=True).print(Text(f"✗ {playbook} interrupted; check `ttsctl status`", style="bold red"))
        sys.exit(EXIT_FAILED)
    finally:
        progress.close()
    out.print(render.summary(playbook, outcome.result, message=outcome.message, seconds=outcome.seconds,
                             check=outcome.check, recorder=outcome.recorder, record=outcome.record,
                             artifact_dir=outcome.artifact_dir))
    sys.exit(EXIT_FOR_RESULT.get(outcome.result, EXIT_FAILED))


main.add_command(webhook)
