"""``chaosregistry faults`` and ``chaosregistry rollback``: see and undo what the ledger holds.

The main CLI registers ``faults_command`` and ``rollback_command``. Both resolve the ledger
directory like everything else (``--ledger-dir`` > ``$CHAOSREGISTRY_LEDGER_DIR`` > the XDG state
directory) and report errors as one line.
"""

import json
from pathlib import Path

import click

from chaosregistry.cli_errors import one_line_errors
from chaosregistry.faults.ledger import (
    Entry,
    Instant,
    Ledger,
    LedgerError,
    RevertReason,
    resolve_ledger_dir,
)
from chaosregistry.faults.lifecycle import RevertError, RevertResult, revert, revert_all
from chaosregistry.faults.watchdog import ensure_watchdog, watchdog_pid
from chaosregistry.osutil.locks import LockBusy

ledger_dir_option = click.option(
    "--ledger-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Ledger directory (default: $CHAOSREGISTRY_LEDGER_DIR, else "
    "$XDG_STATE_HOME/chaostoolkit-registry/ledger).",
)


def _expires_in(entry: Entry, now: Instant) -> str:
    if not entry.active:
        return "-"
    remaining = entry.remaining(now)
    return f"{remaining:.1f}s" if remaining > 0 else "expired"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@click.command("faults")
@ledger_dir_option
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Include reverted and failed faults (kept 30 days after they ended).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def faults_command(ledger_dir: Path | None, show_all: bool, as_json: bool) -> None:
    """List the faults in the ledger (active ones unless --all).

    When active faults are found and no watchdog watches them, one is started.
    """
    with one_line_errors(OSError):
        ledger = Ledger(resolve_ledger_dir(ledger_dir))
        entries, corrupt = ledger.scan()
        for bad in corrupt:
            click.echo(f"warning: unreadable entry {bad.path}: {bad.error}", err=True)
        active = [entry for entry in entries if entry.active]
        if active and watchdog_pid(ledger.path) is None:
            pid = ensure_watchdog(ledger.path)
            click.echo(
                f"warning: no watchdog was watching {len(active)} active fault(s); "
                f"started one (pid {pid})",
                err=True,
            )
        shown = entries if show_all else active
        if as_json:
            click.echo(json.dumps([entry.to_dict() for entry in shown], indent=2))
            return
        if not shown:
            click.echo(f"no {'' if show_all else 'active '}faults in {ledger.path}")
            return
        now = ledger.now()
        rows = [["ID", "KIND", "TARGET", "STATE", "EXPIRES IN", "RUN"]]
        rows += [
            [
                entry.id,
                entry.kind,
                entry.target,
                str(entry.state),
                _expires_in(entry, now),
                entry.run_id or "-",
            ]
            for entry in shown
        ]
        click.echo(_table(rows))


@click.command("rollback")
@ledger_dir_option
@click.argument("fault_ids", nargs=-1, metavar="[FAULT_ID]...")
def rollback_command(ledger_dir: Path | None, fault_ids: tuple[str, ...]) -> None:
    """Revert the faults FAULT_ID..., or every active fault of every run; safe to run again.

    Ids are as `chaosregistry faults` lists them. With none, every active fault in the ledger is
    reverted, newest first, whichever run it belongs to: this is the operator's command.

    Exits non-zero when a fault could not be reverted (the watchdog keeps retrying it) or an
    id is unknown (nothing is reverted then).
    """
    with one_line_errors(OSError):
        ledger = Ledger(resolve_ledger_dir(ledger_dir))
        if fault_ids:
            for fault_id in fault_ids:
                ledger.get(fault_id)  # every id known before anything is reverted
            results = [_revert_one(ledger, fault_id) for fault_id in fault_ids]
        else:
            results = revert_all(ledger, RevertReason.MANUAL)
    if not results:
        click.echo(f"nothing to roll back in {ledger.path}")
        return
    failed = 0
    for result in results:
        entry = result.entry
        what = f"{entry.id} {entry.kind} on {entry.target}"
        if result.ok:
            click.echo(f"reverted {what}")
        else:
            failed += 1
            click.echo(f"FAILED {what}: {result.error}", err=True)
    if failed:
        raise click.ClickException(
            f"{failed} of {len(results)} fault(s) could not be reverted; "
            "the watchdog keeps retrying them"
        )


def _revert_one(ledger: Ledger, fault_id: str) -> RevertResult:
    try:
        return RevertResult(revert(ledger, fault_id, RevertReason.MANUAL))
    except RevertError as exc:
        return RevertResult(exc.entry, error=str(exc))
    except (LockBusy, LedgerError) as exc:
        return RevertResult(ledger.get(fault_id), error=f"fault {fault_id}: {exc}")
