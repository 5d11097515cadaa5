"""The fault ledger: one JSON file per fault, on disk before the fault exists.

Every fault this project injects is written here first (docs/architecture.md, "The fault
lifecycle"), with everything a fresh process needs to undo it. The chaos process, the
watchdog and the CLI all read and change the same files, so:

- a file is replaced atomically and durably (``osutil.files``: a temporary file, fsynced,
  renamed over the entry, then the directory fsynced): a crash leaves the old entry or the
  new one, never half of either;
- every state transition happens under that entry's ``flock`` (``locks/<id>.lock``) and checks
  the current state first, so an entry is reverted once however many processes try.

Runs are kept apart: each entry names the run it belongs to (``run``: the game day's
``$CHAOSREGISTRY_RUN_ID``, else the owner process of a plain ``chaos run``), so a run reverts
only its own faults, and what a fault holds (``holds``, see ``faults.conflicts``) cannot be
taken by another run while it is active: ``record`` refuses such a fault in one line naming
the holder, before writing anything.

Expiry survives steps of the wall clock (NTP, an operator's ``date``): an entry also records
its deadline on the boot clock (``CLOCK_BOOTTIME``, which only moves forward and counts
suspend) with the boot id; that deadline decides while the boot id matches, ``expires_at``
(wall clock) only after a reboot. The clocks come from the ledger's ``Clock``, the seam tests
use to step them.

Ended entries are kept for ``RETENTION_SECONDS`` (30 days) after they ended, for ``faults
--all`` and for an operator reading back what happened; ``record`` then removes them, so a ledger
that a scheduled check shares for months stays small (every ``record`` reads every entry: about
60 ms at 1000 entries). A game day's report never needs them: it copies each fault's outcome
into its gameday.json.

Layout of a ledger directory::

    <id>.json             one entry
    locks/<id>.lock       the entry's transition lock
    locks/claims.lock     serialises "check what other runs hold, then record"
    watchdog.lock         held by the running watchdog for its whole life (holds its pid)
    watchdog-gate.lock    serialises "start a watchdog" against "the watchdog exits"
    watchdog.log          what the watchdog did
"""

import contextlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from chaosregistry.errors import ChaosRegistryError, ConfigError
from chaosregistry.faults.conflicts import held_by
from chaosregistry.osutil import locks
from chaosregistry.osutil.files import write_json
from chaosregistry.osutil.identity import boot_id, read_stat

SCHEMA_VERSION = 1
LEDGER_DIR_ENV = "CHAOSREGISTRY_LEDGER_DIR"
# The run a game day's ``chaos run`` belongs to (``chaosregistry gameday`` sets it).
RUN_ID_ENV = "CHAOSREGISTRY_RUN_ID"
# How long a transition waits for another process that holds the entry (an inject in progress
# holds it while the fault is being applied, which is bounded by the backend's own timeouts).
DEFAULT_LOCK_TIMEOUT = 30.0
# How long an ended entry (reverted, failed to inject) is kept after it ended.
RETENTION_SECONDS = 30 * 86400.0


class LedgerError(ChaosRegistryError):
    """The ledger cannot do what was asked: unknown entry, unreadable file, illegal transition."""


class CorruptEntryError(LedgerError):
    """An entry file exists but is not a valid entry (truncated, edited by hand, wrong schema)."""


class FaultConflict(LedgerError):
    """Another run holds what the fault would take (see ``faults.conflicts``); nothing was
    recorded or applied. The message names the holder: run, pid, fault id, kind and expiry."""


class FaultState(StrEnum):
    """Where a fault is in its life. Stable strings: they are stored in entry files."""

    PENDING = "pending"
    INJECTED = "injected"
    REVERTED = "reverted"
    REVERT_FAILED = "revert-failed"
    FAILED_TO_INJECT = "failed-to-inject"


class RevertReason(StrEnum):
    """Why a fault was (or is being) reverted."""

    ROLLBACK = "rollback"
    EXPIRED = "expired"
    OWNER_GONE = "owner-gone"
    SIGNAL = "signal"
    MANUAL = "manual"


# States with nothing left to undo. Everything else is "active" and watched by the watchdog.
TERMINAL_STATES = frozenset({FaultState.REVERTED, FaultState.FAILED_TO_INJECT})
_REVERTIBLE_STATES = frozenset({FaultState.PENDING, FaultState.INJECTED, FaultState.REVERT_FAILED})


def since_boot() -> float:
    """Seconds since this boot on ``CLOCK_BOOTTIME``: never stepped, and it counts suspend (a
    fault's duration is real time, the machine asleep included)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True)
class Instant:
    """One reading of the clocks a fault's expiry is judged by."""

    wall: float
    since_boot: float
    boot_id: str


@dataclass(frozen=True)
class Clock:
    """Where the ledger reads the time: the wall clock, the boot clock and the boot id.

    The seam for tests: a clock whose wall reading is stepped shows what an NTP step does."""

    wall: Callable[[], float] = time.time
    boot_clock: Callable[[], float] = since_boot
    boot: Callable[[], str] = boot_id

    def now(self) -> Instant:
        return Instant(wall=self.wall(), since_boot=self.boot_clock(), boot_id=self.boot())


SYSTEM_CLOCK = Clock()


@dataclass(frozen=True)
class Owner:
    """The process a fault belongs to: it is reverted as soon as that process is gone.

    A pid alone is not an identity (pids are reused), so the kernel's start time of the process
    (``/proc/<pid>/stat`` field 22, clock ticks since boot) and the boot id go with it.
    """

    pid: int
    start_time: int
    boot_id: str

    @classmethod
    def of(cls, pid: int) -> "Owner":
        """The identity of the running process ``pid``; LedgerError when there is none."""
        stat = read_stat(pid)
        if stat is None or not stat.alive:
            raise LedgerError(f"owner process {pid} does not exist")
        return cls(pid=pid, start_time=stat.start_time, boot_id=boot_id())

    def is_alive(self) -> bool:
        """Whether the very process recorded here still runs (not a zombie, not a reused pid)."""
        if self.boot_id != boot_id():
            return False
        try:
            stat = read_stat(self.pid)
        except PermissionError:
            # Cannot tell (hidepid): keep the fault; its expiry still bounds it.
            return True
        return stat is not None and stat.alive and stat.start_time == self.start_time

    @property
    def run_key(self) -> str:
        """The run a plain ``chaos run`` makes: its process, as one word."""
        return f"pid-{self.pid}-{self.start_time}"


def current_run(owner: Owner | None = None) -> str:
    """The run a fault recorded now belongs to: ``$CHAOSREGISTRY_RUN_ID`` when set (a game
    day), else the run its owner process makes (a plain ``chaos run``), else the calling
    process's."""
    return os.environ.get(RUN_ID_ENV) or (owner or Owner.of(os.getpid())).run_key


@dataclass(frozen=True)
class Entry:
    """One fault as recorded in the ledger; ``to_dict`` is exactly the file's JSON."""

    id: str
    kind: str
    target: str
    parameters: dict[str, Any]
    undo: dict[str, Any]
    created_at: float
    expires_at: float
    owner: Owner | None
    state: FaultState
    applied: dict[str, Any] | None = None
    injected_at: float | None = None
    reverted_at: float | None = None
    revert_reason: RevertReason | None = None
    revert_attempts: int = 0
    last_error: str | None = None
    undo_module: str | None = None
    version: int = field(default=SCHEMA_VERSION)
    # Added later; entries written before have None (and behave as they did).
    run: str | None = None  # the run it belongs to (``current_run``)
    holds: str | None = None  # what no other run may fault meanwhile (``faults.conflicts``)
    boot_id: str | None = None  # the boot whose CLOCK_BOOTTIME ``deadline`` is read on
    deadline: float | None = None  # expiry, in seconds since that boot

    @property
    def active(self) -> bool:
        """True while something may still need undoing."""
        return self.state not in TERMINAL_STATES

    @property
    def run_id(self) -> str | None:
        """The run this fault belongs to (for an entry from before runs were recorded: the run
        its owner process made)."""
        if self.run is not None:
            return self.run
        return None if self.owner is None else self.owner.run_key

    def remaining(self, now: Instant | None = None) -> float:
        """Seconds until the fault expires (negative once it has): on the boot clock when the
        entry was written in this boot, on the wall clock otherwise (after a reboot)."""
        at = SYSTEM_CLOCK.now() if now is None else now
        if self.deadline is not None and self.boot_id and self.boot_id == at.boot_id:
            return self.deadline - at.since_boot
        return self.expires_at - at.wall

    def expired(self, now: Instant | None = None) -> bool:
        return self.remaining(now) <= 0

    @property
    def ended_at(self) -> float | None:
        """When an ended entry ended (wall clock): reverted, or failed to inject (its last
        moment known, the later of its creation and its injection); None while active."""
        if self.active:
            return None
        if self.reverted_at is not None:
            return self.reverted_at
        return max(self.created_at, self.injected_at or 0.0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        data["revert_reason"] = None if self.revert_reason is None else str(self.revert_reason)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "Entry":
        """Parse and validate a stored entry; CorruptEntryError names what is wrong."""
        if not isinstance(data, dict):
            raise CorruptEntryError("entry is not a JSON object")
        try:
            owner_data = data["owner"]
            owner = None if owner_data is None else Owner(**owner_data)
            reason = data.get("revert_reason")
            entry = cls(
                id=data["id"],
                kind=data["kind"],
                target=data["target"],
                parameters=data["parameters"],
                undo=data["undo"],
                created_at=float(data["created_at"]),
                expires_at=float(data["expires_at"]),
                owner=owner,
                state=FaultState(data["state"]),
                applied=data.get("applied"),
                injected_at=_optional_float(data.get("injected_at")),
                reverted_at=_optional_float(data.get("reverted_at")),
                revert_reason=None if reason is None else RevertReason(reason),
                revert_attempts=int(data.get("revert_attempts", 0)),
                last_error=data.get("last_error"),
                undo_module=data.get("undo_module"),
                version=int(data.get("version", SCHEMA_VERSION)),
                run=data.get("run"),
                holds=data.get("holds"),
                boot_id=data.get("boot_id"),
                deadline=_optional_float(data.get("deadline")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptEntryError(f"invalid entry: {type(exc).__name__}: {exc}") from None
        _validate_shape(entry)
        return entry


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _validate_shape(entry: Entry) -> None:
    if not isinstance(entry.id, str) or not entry.id.isalnum():
        raise CorruptEntryError(f"invalid entry id {entry.id!r}")
    for name in ("kind", "target"):
        if not isinstance(getattr(entry, name), str):
            raise CorruptEntryError(f"{name} must be a string")
    if not isinstance(entry.parameters, dict):
        raise CorruptEntryError("parameters must be an object")
    if entry.applied is not None and not isinstance(entry.applied, dict):
        raise CorruptEntryError("applied must be an object or null")
    validate_undo(entry.undo, error=CorruptEntryError)
    if entry.undo_module is not None and not isinstance(entry.undo_module, str):
        raise CorruptEntryError("undo_module must be a module name or null")
    for name in ("run", "holds", "boot_id"):
        if getattr(entry, name) is not None and not isinstance(getattr(entry, name), str):
            raise CorruptEntryError(f"{name} must be a string or null")
    if entry.owner is not None and not (
        isinstance(entry.owner.pid, int) and isinstance(entry.owner.start_time, int)
    ):
        raise CorruptEntryError("owner must hold an integer pid and start_time")


def validate_undo(undo: Any, *, error: type[Exception] = ConfigError) -> None:
    """Check an undo spec is ``{"kind": <handler name>, "params": {...}}``."""
    if not isinstance(undo, Mapping) or set(undo) != {"kind", "params"}:
        raise error('undo must be {"kind": <handler name>, "params": {...}}')
    if not isinstance(undo["kind"], str) or not undo["kind"]:
        raise error("undo kind must be a handler name")
    if not isinstance(undo["params"], Mapping):
        raise error("undo params must be an object")


def validate_duration(duration: Any) -> float:
    """A fault's duration in seconds: a finite number > 0, else ConfigError (no endless faults)."""
    if (
        duration is None
        or isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or duration <= 0
    ):
        raise ConfigError(f"a fault needs a positive duration in seconds, got {duration!r}")
    return float(duration)


@dataclass(frozen=True)
class CorruptFile:
    """An entry file that could not be read as an entry."""

    path: Path
    error: str


def state_home() -> Path:
    """``$XDG_STATE_HOME/chaostoolkit-registry`` (``~/.local/state/...`` when XDG_STATE_HOME
    is unset or not absolute): the default ledger and the index of known ledgers live here."""
    value = os.environ.get("XDG_STATE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(value) if os.path.isabs(value) else Path.home() / ".local" / "state"
    return base / "chaostoolkit-registry"


def resolve_ledger_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the ledger lives: ``explicit`` (``--ledger-dir``, or configuration ``ledger_dir``
    as the settings parse it) > the ``CHAOSREGISTRY_LEDGER_DIR`` environment variable >
    ``<state_home()>/ledger``."""
    for candidate in (explicit, os.environ.get(LEDGER_DIR_ENV)):
        if candidate:
            return Path(os.fspath(candidate)).expanduser().absolute()
    return state_home() / "ledger"


def new_entry_id() -> str:
    return uuid.uuid4().hex[:12]


class Ledger:
    """The ledger in one directory. Reading a directory that does not exist yields nothing;
    the first ``record`` creates it (mode 0700: entries name hosts and ports). ``clock`` is
    where it reads the time (tests pass a stepped one)."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = Path(path)
        self.clock = clock

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    # -- files ----------------------------------------------------------------------------
    def entry_path(self, entry_id: str) -> Path:
        if not entry_id.isalnum():
            raise LedgerError(f"invalid fault id {entry_id!r}")
        return self.path / f"{entry_id}.json"

    def lock_path(self, entry_id: str) -> Path:
        return self.path / "locks" / f"{entry_id}.lock"

    @contextlib.contextmanager
    def lock(
        self, entry_id: str, *, timeout: float | None = DEFAULT_LOCK_TIMEOUT
    ) -> Iterator[None]:
        """Hold the entry's transition lock (re-entrant in this thread; ``LockBusy`` on timeout)."""
        with locks.hold(self.lock_path(entry_id), timeout=timeout):
            yield

    def _write(self, entry: Entry) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_json(self.entry_path(entry.id), entry.to_dict(), mode=0o600, durable=True)

    def read_file(self, path: Path) -> Entry:
        """The entry stored in ``path``; CorruptEntryError when it is not a valid entry."""
        try:
            data = json.loads(path.read_bytes())
        except ValueError as exc:
            raise CorruptEntryError(f"{path}: not JSON ({exc})") from None
        try:
            entry = Entry.from_dict(data)
        except CorruptEntryError as exc:
            raise CorruptEntryError(f"{path}: {exc}") from None
        if path.name != f"{entry.id}.json":
            raise CorruptEntryError(f"{path}: holds entry {entry.id!r}, not its own")
        return entry

    # -- reading --------------------------------------------------------------------------
    def get(self, entry_id: str) -> Entry:
        """The entry ``entry_id``; LedgerError when unknown, CorruptEntryError when unreadable."""
        path = self.entry_path(entry_id)
        try:
            return self.read_file(path)
        except FileNotFoundError:
            raise LedgerError(f"no fault {entry_id!r} in {self.path}") from None

    def scan(self) -> tuple[list[Entry], list[CorruptFile]]:
        """Every readable entry (oldest first) and every entry file that could not be read."""
        entries: list[Entry] = []
        corrupt: list[CorruptFile] = []
        try:
            paths = sorted(self.path.glob("*.json"))
        except FileNotFoundError:
            return entries, corrupt
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                entries.append(self.read_file(path))
            except FileNotFoundError:
                continue  # removed between listing and reading
            except (CorruptEntryError, OSError) as exc:
                corrupt.append(CorruptFile(path, str(exc)))
        entries.sort(key=lambda entry: (entry.created_at, entry.id))
        return entries, corrupt

    def all(self) -> list[Entry]:
        """Every readable entry, oldest first (``scan`` also reports unreadable files)."""
        return self.scan()[0]

    def active(self) -> list[Entry]:
        """Entries not yet reverted (pending, injected, revert-failed), oldest first."""
        return [entry for entry in self.all() if entry.active]

    def now(self) -> Instant:
        """The ledger clock's reading, for ``Entry.expired`` / ``Entry.remaining``."""
        return self.clock.now()

    # -- writing --------------------------------------------------------------------------
    def record(
        self,
        kind: str,
        target: str,
        parameters: Mapping[str, Any],
        undo: Mapping[str, Any],
        duration: float,
        *,
        owner_pid: int | None,
        undo_module: str | None = None,
        run: str | None = None,
        place: str = "",
    ) -> Entry:
        """Write a new ``pending`` entry and fsync it; returns only once it is durable.

        ``undo_module`` names the module that registers the undo handler, so that a fresh
        process can import it (see ``chaosregistry.faults.undo.get_handler``). ``run`` is the
        run the fault belongs to (default: ``current_run`` of the owner); ``place`` names the
        system under test its target belongs to (two sandboxes have hops of the same names).

        Raises ConfigError for a missing or non-positive ``duration`` or a malformed ``undo``,
        LedgerError when ``owner_pid`` is not a running process, and FaultConflict when an
        active fault of another run holds what this one would (``faults.conflicts``). Nothing
        is written then.
        """
        seconds = validate_duration(duration)
        validate_undo(undo)
        if not kind or not target:
            raise ConfigError("a fault needs a kind and a target")
        owner = None if owner_pid is None else Owner.of(owner_pid)
        now = self.clock.now()
        entry = Entry(
            id=new_entry_id(),
            kind=kind,
            target=target,
            parameters=_json_copy(parameters, "parameters"),
            undo=_json_copy(undo, "undo"),
            created_at=now.wall,
            expires_at=now.wall + seconds,
            owner=owner,
            state=FaultState.PENDING,
            undo_module=undo_module,
            run=run if run is not None else current_run(owner),
            holds=held_by(kind, target, place),
            boot_id=now.boot_id or None,
            deadline=now.since_boot + seconds,
        )
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Checking what other runs hold and writing this entry is one step for every process:
        # two runs asking for the same thing at once cannot both see it free.
        with locks.hold(self.path / "locks" / "claims.lock", timeout=DEFAULT_LOCK_TIMEOUT):
            others = self.all()
            self._refuse_conflicts(entry, others)
            with self.lock(entry.id):
                self._write(entry)
        self.prune(others)
        return entry

    def prune(
        self, entries: list[Entry] | None = None, retention: float = RETENTION_SECONDS
    ) -> list[str]:
        """Remove the entries (of ``entries``, default all) that ended more than ``retention``
        seconds ago (wall clock), with their lock files; returns their ids. Active entries and
        unreadable files are never removed. An ended entry changes no more (no transition
        leaves an ended state), so removing it races with nothing but another prune, and a
        file already gone is fine."""
        cutoff = self.clock.wall() - retention
        removed: list[str] = []
        for entry in self.all() if entries is None else entries:
            ended = entry.ended_at
            if ended is None or ended >= cutoff:
                continue
            with contextlib.suppress(FileNotFoundError):
                self.entry_path(entry.id).unlink()
                removed.append(entry.id)
            with contextlib.suppress(FileNotFoundError):
                self.lock_path(entry.id).unlink()
        return removed

    def _refuse_conflicts(self, entry: Entry, others: list[Entry]) -> None:
        if entry.holds is None:
            return
        for other in others:
            if other.active and other.holds == entry.holds and other.run_id != entry.run_id:
                raise FaultConflict(
                    f"{entry.kind} on {entry.target} refused: {describe_holder(other, self.now())}"
                )

    def _transition(
        self,
        entry_id: str,
        allowed: frozenset[FaultState],
        state: FaultState,
        changes: Callable[[Entry], dict[str, Any]],
    ) -> Entry:
        # Read, check and write under the entry's lock: two processes racing to revert the
        # same fault serialise here, and the second one sees the first one's result.
        with self.lock(entry_id):
            current = self.get(entry_id)
            if current.state not in allowed:
                raise LedgerError(f"fault {entry_id} is {current.state}; cannot become {state}")
            updated = replace(current, state=state, **changes(current))
            self._write(updated)
            return updated

    def mark_injected(self, entry_id: str, applied: Mapping[str, Any]) -> Entry:
        """pending -> injected, recording what the backend actually applied."""
        stored = _json_copy(applied, "applied")
        return self._transition(
            entry_id,
            frozenset({FaultState.PENDING}),
            FaultState.INJECTED,
            lambda _: {"applied": stored, "injected_at": self.clock.wall()},
        )

    def mark_reverted(
        self,
        entry_id: str,
        reason: RevertReason | str,
        *,
        observed: Mapping[str, Any] | None = None,
    ) -> Entry:
        """pending | injected | revert-failed -> reverted. Call only once the undo is verified.

        ``observed`` is what the undo saw while verifying (a hop's byte counters): kept as
        ``applied["at_revert"]`` of an entry that had something applied.
        """
        why = RevertReason(reason)
        stored = None if not observed else _json_copy(observed, "observed")

        def changes(current: Entry) -> dict[str, Any]:
            updated: dict[str, Any] = {
                "reverted_at": self.clock.wall(),
                "revert_reason": why,
                "revert_attempts": current.revert_attempts + 1,
            }
            if stored and current.applied is not None:
                updated["applied"] = {**current.applied, "at_revert": stored}
            return updated

        return self._transition(entry_id, _REVERTIBLE_STATES, FaultState.REVERTED, changes)

    def mark_revert_failed(self, entry_id: str, reason: RevertReason | str, error: str) -> Entry:
        """pending | injected | revert-failed -> revert-failed: the watchdog will try again."""
        why = RevertReason(reason)
        return self._transition(
            entry_id,
            _REVERTIBLE_STATES,
            FaultState.REVERT_FAILED,
            lambda current: {
                "revert_reason": why,
                "revert_attempts": current.revert_attempts + 1,
                "last_error": one_line(error),
            },
        )

    def mark_failed(self, entry_id: str, error: str) -> Entry:
        """pending -> failed-to-inject: applying failed and the undo verified that nothing is
        left. (When that undo fails too, the entry becomes revert-failed instead.)"""
        return self._transition(
            entry_id,
            frozenset({FaultState.PENDING}),
            FaultState.FAILED_TO_INJECT,
            lambda _: {"applied": None, "last_error": one_line(error)},
        )


def describe_holder(entry: Entry, now: Instant) -> str:
    """One line naming who holds ``entry``'s target: run, pid, fault id, kind, expiry."""
    pid = "no owner process" if entry.owner is None else f"pid {entry.owner.pid}"
    remaining = entry.remaining(now)
    expiry = f"expires in {remaining:.1f}s" if remaining > 0 else "expired, being reverted"
    return (
        f"run {entry.run_id or '(none)'} ({pid}) holds it with fault {entry.id} "
        f"({entry.kind} on {entry.target}, {entry.state}, {expiry})"
    )


def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line, cut to ``limit`` characters (entries and tables stay readable)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _json_copy(value: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A plain-JSON deep copy of ``value``; ConfigError when it cannot be stored as JSON."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be an object, got {type(value).__name__}")
    try:
        copy: dict[str, Any] = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} cannot be stored as JSON: {exc}") from None
    return copy
