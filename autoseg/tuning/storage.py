"""The Optuna RDB storage of ``autoseg tune``: a SQLite file by default, any SQLAlchemy URL.

Heartbeats are on: a worker records one per running trial every ``heartbeat_seconds``; a
trial silent for twice that long (a SIGKILLed or crashed worker) is marked FAIL by the next
worker that checks, and a copy with the same parameters is queued once
(``RetryHeartbeatStaleTrialCallback(max_retry=1)``).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy import exc
from sqlalchemy.engine import make_url

from autoseg.errors import ConfigError
from autoseg.log import get_logger
from autoseg.workspace import Workspace

__all__ = ["default_storage_url", "open_storage", "redact_url"]

_log = get_logger(__name__)
_OPEN_ATTEMPTS = 5
_SQLITE_TIMEOUT_SECONDS = 60
_POSTGRES_DRIVER = "psycopg[binary]"
"""What SQLAlchemy imports for ``postgresql://`` URLs (``postgresql+psycopg2://`` needs
``psycopg2-binary`` instead)."""


def default_storage_url(workspace: Workspace) -> str:
    """``sqlite:///<work>/tuning.sqlite3`` (absolute path), creating the workspace folder."""
    workspace.root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(workspace.tuning_db).resolve()}"


def redact_url(url: str) -> str:
    """The URL with any password masked (for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find either
        return url


def open_storage(url: str, *, heartbeat_seconds: int = 60) -> optuna.storages.RDBStorage:
    """Open (creating its tables if needed) the RDB storage at ``url``.

    Concurrent first opens of one database can collide while creating the tables (or meet a
    locked SQLite file); those are retried a few times.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:////abs/path.sqlite3`` or
            ``postgresql://user:password@host/db``.
        heartbeat_seconds: Heartbeat interval (>= 1 s); the grace period is twice that.

    Raises:
        ConfigError: if the URL cannot be parsed, its driver is missing, or the database
            cannot be reached.
    """
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": _SQLITE_TIMEOUT_SECONDS}
    busy = ""
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=int(heartbeat_seconds),
                    heartbeat_stale_trial_callback=(
                        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
                    ),
                )
        except (exc.OperationalError, exc.IntegrityError) as err:
            busy = _first_line(err)
            if not _is_collision(err):
                raise ConfigError(
                    f"cannot open the Optuna storage {redact_url(url)!r}: {busy}"
                ) from None
            _log.debug("storage busy (%s); retrying", busy)
            time.sleep(0.5 * (attempt + 1))
        except (exc.SQLAlchemyError, ImportError, ValueError) as err:
            hint = (
                "expected a SQLAlchemy URL such as sqlite:////abs/path/tuning.sqlite3 or "
                "postgresql://user:password@host/db"
            )
            scheme = url.partition(":")[0]
            if "import" in str(err).lower():
                hint = f"install the database driver of {scheme}://"
                if scheme in ("postgresql", "postgresql+psycopg"):
                    hint += f": pip install {_POSTGRES_DRIVER!r}"
            raise ConfigError(
                f"cannot open the Optuna storage {redact_url(url)!r}: {_first_line(err)} ({hint})"
            ) from None
    raise ConfigError(f"cannot open the Optuna storage {redact_url(url)!r}: {busy}")


def _is_collision(err: Exception) -> bool:
    """A lock or a concurrent table creation (worth a retry), not a wrong or missing database."""
    text = str(err).lower()
    return isinstance(err, exc.IntegrityError) or any(
        word in text for word in ("locked", "already exists", "busy", "duplicate")
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
