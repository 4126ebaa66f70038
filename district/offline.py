"""A school gateway of a district that keeps filtering when the district database is away.

Each compiled snapshot (school policy, open sessions, the baseline in force) is written to
``data_dir/district/snapshot.pickle`` whenever it changes; a gateway that starts while the
database cannot be reached loads it and filters with it, and its watcher catches up on the
policy (state version and baseline revision) as soon as the database answers again. Events
meanwhile go to the local journal (gateway/events), replayed exactly once on reconnection.

The file is written only by kalkan, in its own data directory (which holds the school CA key
too), so reading it back with pickle trusts nothing that the gateway did not write itself.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from district.baseline import Baseline, baseline_version, current_baseline, merge_into
from policies.database import read_version
from policies.engine import Engine
from policies.errors import KalkanError
from policies.lookup import CategoryLookup
from policies.snapshot import Snapshot, compile_snapshot

log = logging.getLogger(__name__)

FORMAT = 1


@dataclass(frozen=True, slots=True)
class SavedPolicy:
    """What a gateway needs to filter alone: its school's snapshot (without the blocklist
    index, a file of its own in data_dir) and the baseline it was merged with."""

    format: int
    school_id: str
    version: tuple[int, int]  # (state version, baseline revision)
    snapshot: Snapshot
    baseline: Baseline


def snapshot_path(data_dir: Path) -> Path:
    return data_dir / "district" / "snapshot.pickle"


def save_policy(path: Path, saved: SavedPolicy) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(saved, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_policy(path: Path, school_id: str) -> SavedPolicy | None:
    try:
        with open(path, "rb") as f:
            saved = pickle.load(f)  # our own file, see the module docstring
    except FileNotFoundError:
        return None
    except Exception:  # a torn or foreign file must not keep the gateway from starting
        log.exception("cannot read the saved policy %s; ignoring it", path)
        return None
    if not isinstance(saved, SavedPolicy) or saved.format != FORMAT or (
            saved.school_id != school_id):
        log.warning("the saved policy %s is not this school's (%s); ignoring it", path,
                    school_id)
        return None
    return saved


class DistrictPolicySource:
    """Compiles the school's snapshot with the baseline, saving each new one for offline use."""

    def __init__(self, sessions: sessionmaker[Session], *, school_id: str, data_dir: Path,
                 default_group: str, categories: CategoryLookup | None) -> None:
        self.sessions = sessions
        self.school_id = school_id
        self.path = snapshot_path(data_dir)
        self.default_group = default_group
        self.categories = categories
        self._saved_version: tuple[int, int] | None = None
        self._compiled: object = None  # the version of the snapshot in force
        self._offline = False

    def version(self) -> object:
        """(state version, baseline revision); while the database is away, the version in
        force, so that the watcher waits quietly instead of failing every round."""
        try:
            with self.sessions() as db:
                version = read_version(db), baseline_version(db)
        except OperationalError as exc:
            if not self._offline:
                log.warning("district database unreachable (%s); filtering with policy "
                            "version %s until it is back", exc.orig, self._compiled)
                self._offline = True
            return self._compiled
        if self._offline:
            log.warning("district database back: catching up on policy version %s", version)
            self._offline = False
        return version

    def compile(self) -> Snapshot:
        with self.sessions() as db:
            own = compile_snapshot(db, default_group=self.default_group)
            baseline = current_baseline(db)
        version = (own.version, baseline.revision)
        self._compiled = version
        if version != self._saved_version:
            try:
                save_policy(self.path, SavedPolicy(FORMAT, self.school_id, version,
                                                   replace(own, _clients={}), baseline))
                self._saved_version = version
            except OSError:
                log.exception("cannot save the policy to %s for offline use", self.path)
        return merge_into(own, baseline, self.categories)

    def load_saved(self) -> Snapshot:
        saved = load_policy(self.path, self.school_id)
        if saved is None:
            raise KalkanError(
                "the district database cannot be reached and this gateway has no saved "
                "policy yet", hint="start it once while the district database is reachable; "
                "from then on it keeps its last policy in data_dir/district/")
        log.warning("district database unreachable: filtering with the saved policy "
                    "(state version %s, baseline revision %s) until it is back",
                    *saved.version)
        self._saved_version = saved.version
        # The engine remembers the snapshot's plain number for it: no (state, baseline) pair
        # equals it, so the first round that reaches the database recompiles.
        self._compiled = saved.snapshot.version
        self._offline = True
        return merge_into(saved.snapshot, saved.baseline, self.categories)


def open_district_engine(sessions: sessionmaker[Session], *, school_id: str, data_dir: Path,
                         default_group: str, categories: CategoryLookup | None) -> Engine:
    """The engine of a school gateway: from the database if it answers, else the saved policy."""
    source = DistrictPolicySource(sessions, school_id=school_id, data_dir=data_dir,
                                  default_group=default_group, categories=categories)
    try:
        snapshot = source.compile()
        version: object = source.version()
    except KalkanError:
        raise
    except Exception as exc:  # the database is away: filter with what we had
        log.warning("district database: %s", exc)
        snapshot = source.load_saved()
        version = None
    return Engine(snapshot, source.compile, source.version, compiled_version=version)
