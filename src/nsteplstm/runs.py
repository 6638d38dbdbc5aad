"""The run directory: every file a training run writes and every way to read it back.

A run directory holds:

- ``config.json``: ``{"format_version": 1, "config": Config.to_dict(), "model":
  Forecaster.config, "scaler": Scaler.to_dict() or null, "data_sha256": the CSV
  file's SHA-256 or null, "data_header": the header's names of the CSV columns read
  and of its series-id column (``{"columns": [...], "series_id": name or null}``), or
  null, "training_rows": per series id, how many first rows of a CSV series the
  model was trained on and their SHA-256 (see :func:`nsteplstm.data.training_rows`), or
  null}``; written first.
- ``model.safetensors``: the final weights (``Forecaster.state_dict()`` keys), float32.
- ``history.csv``: ``epoch,train_loss,val_loss,seconds``, one row per finished epoch
  (losses are mean squared errors in the data's (scaled) units, seconds wall time).
- ``metrics.json``: final numbers of the run; others add keys (``forecast.<name>``)
  with :func:`update_metrics`.
- ``checkpoint.json`` + the ``checkpoint-*.safetensors`` file it names: the state to
  resume training from (see :func:`save_checkpoint`).

Every file is written with :func:`write_files` (atomic; several at once all or nothing)
and named with :func:`output_path`.
Weights are read only from safetensors, metadata only from JSON: nothing here can
run code from a file. Every problem with a file is a one-line :class:`InputError`
naming the file.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import io
import json
import math
import os
import re
import shlex
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None  # type: ignore[assignment]

import safetensors.torch
import torch
from safetensors import SafetensorError

from .config import Config
from .data import Scaler
from .errors import InputError, check_int, decode_text, is_int, one_line, read_input, some
from .model import Forecaster

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.json"
HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "seconds")
# The files a run writes into its directory (forecasts: nsteplstm forecast).
RUN_FILES = (CONFIG_FILE, MODEL_FILE, HISTORY_FILE, METRICS_FILE, CHECKPOINT_FILE)
RUN_FILES += tuple(f"forecast-{m}.{ext}" for m in ("window", "stream") for ext in ("csv", "png"))
_CHECKPOINT_WEIGHTS = re.compile(r"checkpoint-[0-9]+(-[0-9]+)?\.safetensors")


# ------------------------------------------------------------------ writing files


@dataclass(frozen=True)
class Tensors:
    """Tensors to write as a safetensors file, streamed from their memory: no copy of
    the whole file is built (a checkpoint holds the weights three times over)."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]


FileData = bytes | str | Tensors


def atomic_write(path: str | Path, data: FileData) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new
    (:func:`write_files` with one file)."""
    write_files({Path(path): data})


def write_files(files: Mapping[Path, FileData]) -> None:
    """Write several files all or nothing: a failure (a full disk, say) leaves every
    one of them as it was.

    Each file's data goes to a temporary file next to it, flushed and fsynced; only
    when all are written are they renamed over their paths (``os.replace``, atomic per
    file) and the directories fsynced. An OSError names the file it concerns (``filename``).
    """
    umask = os.umask(0)
    os.umask(umask)
    temps: dict[Path, str] = {}
    try:
        for path, data in files.items():
            try:
                fd, temps[path] = tempfile.mkstemp(
                    prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
                )
                _write(fd, temps[path], data)
                os.chmod(temps[path], 0o666 & ~umask)  # mkstemp makes 0600; the usual mode
            except OSError as e:
                raise OSError(e.errno, f"cannot write ({e.strerror or e})", str(path)) from None
        for path in temps:  # the one failure a rename can meet here: none is done yet
            if path.is_dir() and not path.is_symlink():
                raise OSError(errno.EISDIR, "cannot write (is a directory)", str(path))
        for path, tmp in temps.items():
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise OSError(e.errno, f"cannot write ({e.strerror or e})", str(path)) from None
    except BaseException:
        for tmp in temps.values():
            Path(tmp).unlink(missing_ok=True)
        raise
    for directory in {path.parent for path in files}:
        _fsync_dir(directory)


def _write(fd: int, path: str, data: FileData) -> None:
    """Write ``data`` into the open, empty file ``fd`` at ``path``, fsync and close it."""
    if isinstance(data, Tensors):
        os.close(fd)
        cpu = {k: v.detach().to("cpu").contiguous() for k, v in data.tensors.items()}
        try:
            safetensors.torch.save_file(cpu, path, metadata=data.metadata)
        except SafetensorError as e:  # its I/O errors end in "(os error N)"
            found = re.search(r"\(os error (\d+)\)", str(e))
            number = int(found.group(1)) if found else None
            raise OSError(number, os.strerror(number) if number else str(e)) from None
        fd = os.open(path, os.O_RDONLY)
    else:
        with open(fd, "wb", closefd=False) as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def output_path(run_dir: str | Path, name: str) -> Path:
    """``run_dir / name`` for a plain file name; InputError when ``name`` could escape
    ``run_dir`` (empty, ``.``/``..``, absolute, or containing a path separator)."""
    bad = (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or os.path.isabs(name)
    )
    if bad:
        raise InputError(
            f"file name {name!r} is not a plain file name inside the run directory {run_dir}"
        )
    return Path(run_dir) / name


def run_name(path: str | os.PathLike[str]) -> str:
    """The name a run goes by in titles and legends: its directory's name, also when
    given as ``.`` or ``..`` (whose own name is empty or "..")."""
    return Path(os.path.abspath(path)).name  # symlinks keep the name they were given


def run_path(path: str | os.PathLike[str], what: str = "run directory") -> Path:
    """``path`` as a Path; InputError naming it ``what`` for None, a number, or an
    empty string (which Path would take as the current directory)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise InputError(f"{what} must be a path, got {path!r}")
    return Path(path)


def command_path(path: str | os.PathLike[str]) -> str:
    """``path`` as one argument of a command to paste into a shell: quoted where
    needed, and ``./PATH`` where it begins with ``-`` (argparse would take an option)."""
    text = os.fspath(path)
    return shlex.quote(f"./{text}" if text.startswith("-") else text)


class RunLock:
    """One process at a time trains or forecasts into a run directory: an exclusive,
    non-blocking ``flock`` on the directory itself, held until :meth:`release` (or the
    process ends). Two processes resuming one run deleted each other's checkpoint
    weights, and a crash between left a run that could not be resumed; two forecasts
    could each write ``metrics.json`` over the other's entry. Where ``flock`` does not exist
    (Windows) or the file system refuses it, there is no lock."""

    def __init__(self) -> None:
        self._fd: int | None = None

    def acquire(self, run_dir: Path) -> None:
        """Hold ``run_dir`` (an existing directory); InputError if another process does.
        Holding it already: nothing to do."""
        if self._fd is not None or fcntl is None:
            return
        try:
            fd = os.open(run_dir, os.O_RDONLY)
        except OSError:  # not readable: what uses the run reports that itself
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"{run_dir}: another process is training or forecasting this run; wait for "
                "it to end"
            ) from None
        except OSError:  # no flock on this file system
            os.close(fd)
            return
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def creation_blocker(path: Path) -> str | None:
    """Why files cannot be written into the directory ``path``, made where missing:
    what ``path`` or its nearest existing ancestor is (a broken link, not a directory,
    not writable); None where nothing stops it."""
    existing = next(p for p in (path, *path.absolute().parents) if p.exists() or p.is_symlink())
    if (link := _dangling_link(existing)) is not None:  # mkdir would say "File exists"
        return f"{existing} is {link}"
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not can_create_in(existing):
        return f"{existing} is not writable"
    return None


def can_create_in(directory: Path) -> bool:
    """Whether an entry can be made in the existing ``directory``, found by making and
    removing one (``os.access`` says yes to root everywhere, ``/proc`` included)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nsteplstm-", dir=directory))
    except OSError:
        return False
    return True


def check_dir_free(path: str | Path, force: bool, what: str) -> Path:
    """Raise :class:`InputError`, naming ``path`` ``what`` (``"demo directory"``), unless
    a command may write into the directory ``path``: it does not exist (and can be
    made), is an empty directory, or (with ``force``) any directory. Changes nothing."""
    path = run_path(path, what)
    if (link := _dangling_link(path)) is not None:
        raise InputError(f"{what} {path} is {link}; pick another --out")
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} exists and is not a directory; pick another --out")
    if (why := creation_blocker(path)) is not None:  # found now, not after the training
        raise InputError(f"cannot create {what} {path}: {why}")
    if not force and path.is_dir() and any(path.iterdir()):
        raise InputError(
            f"{what} {path} exists and is not empty; pass --force to overwrite "
            "it or pick another --out (force=True or another directory from Python)"
        )
    return path


def check_run_dir_free(path: str | Path, force: bool) -> Path:
    """Raise :class:`InputError` unless :func:`prepare_run_dir` may use ``path``: it does
    not exist, is an empty directory, or (with ``force``) any directory whose earlier
    run's files can be replaced (:func:`check_dir_free`), none of them a directory, and,
    where forecasts other than ``forecast-window.*``/``forecast-stream.*`` lie there, a
    readable metrics.json to tell which are the old run's (:func:`_check_forecasts_known`).
    Changes nothing, so a command can check its output before the slow or failing part
    of its work."""
    path = check_dir_free(path, force, "run directory")
    if force and path.is_dir():  # which forecast files the old run's are: what goes
        _check_forecasts_known(path)
    for old in _old_run_files(path):
        if old.is_dir() and not old.is_symlink():
            raise InputError(f"cannot replace {old}: it is a directory")
    return path


def _check_forecasts_known(run_dir: Path) -> None:
    """InputError where ``--force`` cannot tell which named forecasts in ``run_dir`` are
    the old run's, to remove, and which the user's, to keep: its metrics.json, which
    records them, is damaged, or missing though other files of a run are there (kept,
    they would pass for the new model's). The error names those forecast files; nothing
    is refused for ``forecast-window.*`` and ``forecast-stream.*``, which go in any case
    (:data:`RUN_FILES`)."""
    named = [p.name for p in forecast_files(run_dir) if p.name not in RUN_FILES]
    if not named:
        return
    path = run_dir / METRICS_FILE
    if os.path.lexists(path):
        try:
            _read_records(run_dir)
            return
        except InputError as e:
            why, fix = str(e), "repair it, or move them elsewhere"
    elif holds_run(run_dir):
        why, fix = f"{path}: file not found", "move them elsewhere"
    else:  # no run here: they are the user's
        return
    raise InputError(
        f"{why}; it records which of the forecast files here "
        f"({some(named, most=3, noun='files')}) are the old run's, for --force to remove: "
        f"{fix} or delete them, and run again (forecast-window.* and forecast-stream.* go "
        "with the old run in any case)"
    )


def holds_run(path: str | Path) -> bool:
    """Whether ``path`` holds files of a run (what :func:`prepare_run_dir` with ``force``
    would remove)."""
    return bool(_old_run_files(Path(path)))


def _old_run_files(path: Path) -> list[Path]:
    """The files of an earlier run in ``path`` that a new run replaces: those it
    writes, its checkpoints, and the named forecasts its metrics.json records."""
    if not path.is_dir():
        return []
    found = [path / name for name in RUN_FILES if os.path.lexists(path / name)]
    named = recorded_forecasts(path)
    forecasts = [p for p in forecast_files(path) if p.stem.removeprefix("forecast-") in named]
    return (
        found
        + [p for p in forecasts if p not in found]
        + _checkpoint_weights(path)
        + leftover_files(path)
    )


# What a killed process leaves beside a run's file: write_files' temporary copy
# (mkstemp: 8 random characters) and prepare_run_dir's old file set aside (its pid);
# a --force killed while setting aside such a leftover leaves it set aside again
# (``..config.json.123.removed.456.removed``).
_OWN = (
    r"(?:config\.json|model\.safetensors|history\.csv|metrics\.json|checkpoint[-.].*|forecast-.*)"
)
_LEFTOVER = re.compile(rf"\.+{_OWN}(?:\.(?:[A-Za-z0-9_]{{8}}\.tmp|[0-9]+\.removed))+")


def leftover_files(run_dir: Path) -> list[Path]:
    """The temporary files a process killed while writing ``run_dir`` left in it (none
    of a live one: it holds the run's lock, see :class:`RunLock`)."""
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if _LEFTOVER.fullmatch(p.name) and p.is_file())


def recorded_forecasts(run_dir: str | Path) -> dict[str, Any]:
    """The forecasts ``metrics.json`` records (key ``forecast``), by name; ``{}`` where
    the file is missing or damaged (:func:`forecast_records` refuses that)."""
    try:
        return _read_records(Path(run_dir))
    except InputError:
        return {}


def forecast_records(run_dir: str | Path, advice: str) -> dict[str, Any]:
    """The forecasts ``metrics.json`` records (key ``forecast``), by name, for what writes
    that file again or removes the run's forecasts; ``{}`` where it is missing.

    Where it cannot be read (or its ``forecast`` is no JSON object), which of the
    forecast files in ``run_dir`` are the run's is lost with it: an InputError naming
    the file and those files, ending in ``advice`` (what to do); ``{}`` where there are
    none (nothing to lose)."""
    run_dir = Path(run_dir)
    try:
        return _read_records(run_dir)
    except InputError as e:
        names = sorted({p.stem.removeprefix("forecast-") for p in forecast_files(run_dir)})
        if not names:
            return {}
        here = f"{some(names, noun='forecasts')}: forecast-NAME.csv and .png"
        message = f"{e}; it records which of the forecasts here ({here}) are the run's: {advice}"
        raise InputError(message) from None


def _read_records(run_dir: Path) -> dict[str, Any]:
    """``metrics.json``'s ``forecast`` entry; ``{}`` where the file is missing or has
    none; InputError where the file or the entry is damaged."""
    path = run_dir / METRICS_FILE
    if not os.path.lexists(path):
        return {}
    recorded = read_metrics(run_dir).get("forecast", {})
    if not isinstance(recorded, dict):
        raise InputError(f"{path}: 'forecast' must be a JSON object, got {recorded!r:.40}")
    return recorded


def forecast_files(run_dir: Path) -> list[Path]:
    """The files in ``run_dir`` named as ``nsteplstm forecast`` names its outputs:
    ``forecast-*.csv`` and ``forecast-*.png``."""
    return sorted(p for p in run_dir.glob("forecast-*") if p.suffix in (".csv", ".png"))


def _checkpoint_weights(run_dir: Path) -> list[Path]:
    """The checkpoint weights files in ``run_dir`` (``checkpoint-E[-B].safetensors``
    exactly: a user's ``checkpoint-backup.safetensors`` is not one)."""
    return sorted(p for p in run_dir.glob("checkpoint-*") if _CHECKPOINT_WEIGHTS.fullmatch(p.name))


def prepare_run_dir(
    path: str | Path, force: bool, write: Callable[[Path], None] | None = None
) -> Path:
    """Create the run directory ``path`` (and parents), or accept an empty one, and
    write the new run's first files into it with ``write(path)``.

    An existing non-empty directory is refused unless ``force``; with ``force`` the
    files of an earlier run (:data:`RUN_FILES`, checkpoints, the named forecasts its
    metrics.json records) go so nothing stale survives, other files are left alone.
    All or nothing: the old files are renamed aside until ``write`` returns; where it
    fails (a full disk), the files it wrote are removed, the old ones come back, and
    the directories this call created are removed. Nothing is removed when one of the
    old files is a directory or cannot be renamed.
    """
    path = check_run_dir_free(path, force)
    moved = _set_aside(_old_run_files(path))
    try:
        with new_directory(path, "run directory"):
            before = set(os.listdir(path))
            try:
                if write is not None:
                    write(path)
            except BaseException:
                for name in set(os.listdir(path)) - before:  # the new run's files
                    with contextlib.suppress(OSError):
                        (path / name).unlink()
                raise
    except BaseException:
        for aside, name in reversed(moved):
            aside.rename(name)
        raise
    for aside, _ in moved:
        aside.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def new_directory(path: Path, what: str) -> Iterator[None]:
    """Inside, the directory ``path`` exists (made with its parents where missing);
    where the body fails, the directories made here are removed again (those left
    empty). InputError, naming it ``what``, when it cannot be made."""
    created = [p for p in (path, *path.absolute().parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {what} {path}: {e.strerror or e}") from None
    try:
        yield
    except BaseException:
        for directory in created:  # the deepest first
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


def _set_aside(files: list[Path]) -> list[tuple[Path, Path]]:
    """Rename ``files`` aside (``.NAME.PID.removed``); returns (aside, original) pairs.
    InputError, with every file back in place, when one cannot be renamed."""
    moved: list[tuple[Path, Path]] = []
    for old in files:
        aside = old.with_name(f".{old.name}.{os.getpid()}.removed")
        try:
            old.rename(aside)
        except FileNotFoundError:
            continue
        except OSError as e:
            for back, name in reversed(moved):
                back.rename(name)
            raise InputError(
                f"cannot remove {old}: {e.strerror or e}; nothing was removed"
            ) from None
        moved.append((aside, old))
    return moved


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


# ------------------------------------------------------------------ reading files


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: _dumps could not write it back either
        raise ValueError(f"{text} is beyond float64's range")
    return value


def _read_json(path: Path, what: str) -> Any:
    raw = read_input(path, str(path))
    try:  # NaN and Infinity are refused: _dumps could not write them back
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        msg = one_line(e)
        raise InputError(f"{path}: {what} is not valid JSON ({msg})") from None


def _dangling_link(path: Path) -> str | None:
    """What ``path`` is where it is a symbolic link leading nowhere: ``"a symbolic link
    in a loop"`` or ``"a broken symbolic link (to TARGET)"``; else None."""
    if not path.is_symlink() or path.exists():
        return None
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python 3.11's "Symlink loop"
        return "a symbolic link in a loop"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link in a loop"
    return f"a broken symbolic link (to {os.readlink(path)})"


def _check_run_dir(run_dir: str | Path) -> Path:
    run_dir = run_path(run_dir)
    if (link := _dangling_link(run_dir)) is not None:
        raise InputError(f"run directory {run_dir} is {link}")
    if not run_dir.exists():
        raise InputError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir} is not a run directory (not a directory)")
    return run_dir


def _read_tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    raw = read_input(path, str(path))
    try:
        return safetensors.torch.load(raw)
    except (SafetensorError, ValueError, RuntimeError) as e:
        msg = one_line(e)
        raise InputError(
            f"{path}: {what} is truncated or corrupted (not a readable safetensors file: {msg})"
        ) from None


def _check_tensors(
    tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path, what: str
) -> None:
    """InputError unless ``tensors`` has exactly ``expected``'s keys, shapes and dtypes."""
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
        raise InputError(
            f"{path}: {what} does not match the architecture in {CONFIG_FILE} ({'; '.join(parts)})"
        )
    for key, ref in expected.items():
        t = tensors[key]
        if tuple(t.shape) != tuple(ref.shape) or t.dtype != ref.dtype:
            raise InputError(
                f"{path}: {what} tensor {key} has shape {tuple(t.shape)} {t.dtype}, "
                f"expected {tuple(ref.shape)} {ref.dtype}"
            )
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise InputError(f"{path}: {what} tensor {key} contains NaN or infinite values")


# ------------------------------------------------------------------ config.json


def write_config(
    run_dir: str | Path,
    config: Config,
    model_config: dict[str, Any],
    scaler: Scaler | None,
    data_sha256: str | None = None,
    data_header: dict[str, Any] | None = None,
    training_rows: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Write ``config.json`` (see the module docstring)."""
    doc = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "model": model_config,
        "scaler": None if scaler is None else scaler.to_dict(),
        "data_sha256": data_sha256,
        "data_header": data_header,
        "training_rows": training_rows,
    }
    atomic_write(output_path(run_dir, CONFIG_FILE), _dumps(doc))


def _stored(run_dir: str | Path, key: str, valid: Callable[[Any], bool], what: str) -> Any:
    """``config.json``'s ``key`` (None where absent); InputError unless it is null or
    ``valid``, ``what`` saying what it must be."""
    path = output_path(_check_run_dir(run_dir), CONFIG_FILE)
    doc = _read_json(path, CONFIG_FILE)
    saved = doc.get(key) if isinstance(doc, dict) else None
    if saved is not None and not valid(saved):
        raise InputError(f"{path}: {key} must be {what} or null, got {saved!r}")
    return saved


def stored_data_digest(run_dir: str | Path) -> str | None:
    """``config.json``'s ``data_sha256``: the SHA-256 (hex) of the run's CSV file when its
    training started; None for generated data and runs written before it was recorded."""
    return _stored(run_dir, "data_sha256", lambda v: isinstance(v, str), "a string")


def _rows_entry(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and set(v) == {"rows", "sha256"}
        and is_int(v["rows"])
        and v["rows"] >= 0
        and isinstance(v["sha256"], str)
    )


def stored_training_rows(run_dir: str | Path) -> dict[str, dict[str, Any]] | None:
    """``config.json``'s ``training_rows`` (see the module docstring); None for
    generated data and runs written before they were recorded."""
    return _stored(
        run_dir,
        "training_rows",
        lambda v: isinstance(v, dict) and all(_rows_entry(e) for e in v.values()),
        'an object of {"rows": N >= 0, "sha256": "..."} by series id',
    )


def _header(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and set(v) == {"columns", "series_id"}
        and isinstance(v["columns"], list)
        and all(isinstance(c, str) for c in v["columns"])
        and (v["series_id"] is None or isinstance(v["series_id"], str))
    )


def stored_data_header(run_dir: str | Path) -> dict[str, Any] | None:
    """``config.json``'s ``data_header`` (see :attr:`nsteplstm.data.Series.header`): the
    header's names of the CSV columns the run was trained on, in order, and of its
    series-id column; None for generated data, a file without header and runs written
    before they were recorded."""
    return _stored(
        run_dir, "data_header", _header, '{"columns": [names], "series_id": name or null}'
    )


def check_same_data(
    run_dir: str | Path, data_sha256: str | None, moved_to: Path | None = None
) -> None:
    """InputError unless the run's data file is unchanged: its ``config.json`` holds
    ``data_sha256`` (runs of generated data, and runs written before this check, hold
    none and pass). ``moved_to``: ``data_sha256`` is of the file there, in another
    place than the run's, which must be the run's own: the run must hold its digest."""
    saved = stored_data_digest(run_dir)
    if moved_to is None and saved in (None, data_sha256):
        return
    config = read_config(run_dir)[0]  # the document checked, only to name the file
    if moved_to is not None and saved is None:
        raise InputError(
            f"{run_dir}: the run records no SHA-256 of its data, so a file in another place "
            f"cannot be checked to be the same; put it back at {config.csv_path}"
        )
    if saved is not None and saved != data_sha256:
        if config.csv_path is None:
            raise InputError(
                f"{run_dir / CONFIG_FILE}: data_sha256 is set, but data = {config.data!r} "
                "is no file"
            )
        if moved_to is not None:
            raise InputError(
                f"{moved_to}: not the file the run in {run_dir} was trained on (its SHA-256 "
                f"differs from that of {config.csv_path} then); resuming needs the same data"
            )
        raise InputError(
            f"{config.csv_path}: the file changed since the run in {run_dir} started (its SHA-256 "
            f"differs); resuming needs the same data: restore the file, or train anew"
        )


def check_data_found(config: Config, advice: str) -> None:
    """InputError where the CSV file a run's ``config`` names is gone (a dangling link
    too), ending in ``advice`` (how to name its new place, say)."""
    path = config.csv_path
    if path is not None and not os.path.exists(path):
        raise InputError(
            f"{path}: file not found (the run's data, as its config.json names it); {advice}"
        )


def move_data(run_dir: str | Path, data: str) -> None:
    """Set ``config.json``'s ``data`` to ``data``: the run's CSV file in its new place."""
    path = output_path(_check_run_dir(run_dir), CONFIG_FILE)
    doc = _read_json(path, CONFIG_FILE)
    doc["config"]["data"] = data
    atomic_write(path, _dumps(doc))


def _check_version(doc: dict[str, Any], path: Path) -> None:
    """Refuse a document without a sane ``format_version`` or from a newer nsteplstm."""
    version = doc.get("format_version")
    check_int(f"{path}: format_version", version)
    if version > FORMAT_VERSION:
        raise InputError(
            f"{path}: format_version {version} was written by a newer nsteplstm; "
            f"this version reads format_version {FORMAT_VERSION} (upgrade nsteplstm)"
        )


def read_config(run_dir: str | Path) -> tuple[Config, dict[str, Any], Scaler | None]:
    """Read ``config.json``: the run's Config, the model's constructor arguments, the scaler.

    Where it is missing, the InputError says why when it can and what to do: a killed
    ``--force`` set the run aside, ``run_dir`` holds no run file at all (not a run
    directory), or the run's other files are there without it."""
    run_dir = _check_run_dir(run_dir)
    path = output_path(run_dir, CONFIG_FILE)
    if not os.path.lexists(path):
        _refuse_missing_config(run_dir, path)
    doc = _read_json(path, CONFIG_FILE)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object with format_version, config, model")
    _check_version(doc, path)
    for key in ("config", "model"):
        if not isinstance(doc.get(key), dict):
            raise InputError(f"{path}: '{key}' must be a JSON object")
    # Every setting of this format is written: a missing one would silently take its
    # default (a model trained on windows of 10 forecast with windows of 30).
    missing = [f.name for f in dataclasses.fields(Config) if f.name not in doc["config"]]
    if missing:
        raise InputError(f"{path}: 'config' lacks {some(missing)}")
    config = Config.from_dict(doc["config"], str(path))
    model = doc["model"]
    for key in ("n_layers", "n_in", "n_hidden", "n_out", "dropout", "cell"):
        if key not in model:  # Forecaster's default would then not fit the weights
            raise InputError(f"{path}: 'model' lacks {key!r}")
        if model[key] != getattr(config, key):
            raise InputError(
                f"{path}: 'model' does not match its 'config' ({key}: "
                f"{getattr(config, key)!r} in config, {model[key]!r} in model)"
            )
    scaler = None
    if doc.get("scaler") is not None:
        scaler = Scaler.from_dict(doc["scaler"], f"{path}")
    return config, dict(doc["model"]), scaler


def _refuse_missing_config(run_dir: Path, path: Path) -> None:
    """The InputError for a ``run_dir`` without its ``config.json`` (``path``), which
    says why when it can: a killed ``--force`` set the run aside, the directory holds no
    run at all, or the run's other files are there without it."""
    aside = [p.name for p in leftover_files(run_dir) if p.name.endswith(".removed")]
    if aside:
        raise InputError(
            f"{path}: file not found; a train --force killed while replacing the run left "
            f"the old run's files set aside ({some(aside, most=2)}): to train anew, "
            f"nsteplstm train --out {command_path(run_dir)} --force"
        )
    others = [p.name for p in _old_run_files(run_dir)]
    if not others:
        raise InputError(f"{path}: file not found; {run_dir} holds no run: name a run directory")
    raise InputError(
        f"{path}: file not found; {run_dir} holds the run's other files "
        f"({some(others, most=3)}) but not its {CONFIG_FILE}, which says how to read them: "
        f"restore it, or train anew with nsteplstm train --out {command_path(run_dir)} --force"
    )


def build_model(model_config: dict[str, Any], source: str | Path) -> Forecaster:
    """A fresh :class:`Forecaster` from its ``config`` dict; InputError naming ``source``."""
    try:
        return Forecaster(**model_config)
    except (InputError, TypeError, ValueError) as e:
        msg = one_line(e)
        raise InputError(f"{source}: 'model' is not a valid architecture ({msg})") from None


# ------------------------------------------------------------------ model weights


def save_model(path: str | Path, model: Forecaster) -> None:
    """Write the model's weights to ``path`` as safetensors (contiguous CPU tensors).

    The architecture lives in ``config.json`` (``"model"``); a copy is kept in the
    file's metadata for people inspecting it.
    """
    atomic_write(path, _model_tensors(model))


def _model_tensors(model: Forecaster) -> Tensors:
    # One metadata key: safetensors writes several in an order that varies from call
    # to call, so the same weights would not give the same bytes (sha256sum checks).
    about = {"format_version": FORMAT_VERSION, "model": model.config}
    return Tensors(model.state_dict(), {"nsteplstm": json.dumps(about, sort_keys=True)})


def load_model(run_dir: str | Path, file: str = MODEL_FILE) -> Forecaster:
    """The trained model of ``run_dir`` on the CPU in eval mode.

    The architecture comes from ``config.json``; the weights from ``file`` must have
    exactly its tensor names, shapes and dtypes, and finite values.
    """
    _, model_config, _ = read_config(run_dir)
    model = build_model(model_config, Path(run_dir) / CONFIG_FILE)
    path = output_path(run_dir, file)
    tensors = _read_tensors(path, file)
    _check_tensors(tensors, model.state_dict(), path, file)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


# ------------------------------------------------------------------ history, metrics


def write_history(run_dir: str | Path, history: list[dict[str, Any]]) -> None:
    """Write ``history.csv`` (floats in full precision: they read back bit for bit)."""
    atomic_write(output_path(run_dir, HISTORY_FILE), _history_text(history))


def _history_text(history: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HISTORY_FIELDS)
    for row in history:
        writer.writerow([int(row["epoch"])] + [repr(float(row[k])) for k in HISTORY_FIELDS[1:]])
    return buf.getvalue()


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of ``history.csv`` as dicts (epoch int, the rest float)."""
    path = output_path(_check_run_dir(run_dir), HISTORY_FILE)
    text = decode_text(read_input(path, str(path)), str(path), "CSV")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != HISTORY_FIELDS:
        raise InputError(f"{path}: the header must be {','.join(HISTORY_FIELDS)}")
    history = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:  # a blank line
            continue
        try:
            if len(row) != len(HISTORY_FIELDS):
                raise ValueError
            entry: dict[str, Any] = {"epoch": int(row[0])}
            entry.update({k: float(v) for k, v in zip(HISTORY_FIELDS[1:], row[1:], strict=True)})
            if not all(math.isfinite(entry[k]) for k in HISTORY_FIELDS[1:]):
                raise ValueError
        except ValueError:
            raise InputError(
                f"{path}: line {line} must hold an epoch and three finite numbers, "
                f"got {','.join(row)!r}"
            ) from None
        history.append(entry)
    return history


def write_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json``."""
    atomic_write(output_path(run_dir, METRICS_FILE), _dumps(metrics))


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """``metrics.json`` as a dict."""
    path = output_path(_check_run_dir(run_dir), METRICS_FILE)
    doc = _read_json(path, METRICS_FILE)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: {METRICS_FILE} must hold a JSON object")
    return doc


def write_results(
    run_dir: str | Path, model: Forecaster, history: list[dict[str, Any]], metrics: dict[str, Any]
) -> None:
    """Write a finished run's ``model.safetensors``, ``history.csv`` and ``metrics.json``,
    all or nothing (:func:`write_files`)."""
    write_files(
        {
            output_path(run_dir, MODEL_FILE): _model_tensors(model),
            output_path(run_dir, HISTORY_FILE): _history_text(history),
            output_path(run_dir, METRICS_FILE): _dumps(metrics),
        }
    )


def update_metrics(
    run_dir: str | Path, key: str, value: Any, files: Mapping[Path, FileData] | None = None
) -> dict[str, Any]:
    """Set ``key`` in ``metrics.json`` and write it back atomically; return all metrics.

    A dotted key (``"forecast.window"``) names a nested entry, created as needed.
    ``value`` must be JSON-able (non-finite floats are not). ``files`` (path: data)
    are written together with it, all or nothing (:func:`write_files`).
    """
    metrics = read_metrics(run_dir)
    *parents, leaf = key.split(".")
    node = metrics
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value
    write_files({**(files or {}), output_path(run_dir, METRICS_FILE): _dumps(metrics)})
    return metrics


# ------------------------------------------------------------------ a finished run


@dataclass
class Run:
    """A finished training run, read back from its directory."""

    path: Path
    config: Config
    model: Forecaster
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    scaler: Scaler | None
    data_sha256: str | None = None  # the CSV file's when training started
    data_header: dict[str, Any] | None = None  # see data.Series.header
    training_rows: dict[str, dict[str, Any]] | None = None  # see data.training_rows


def load_run(run_dir: str | Path, *, history: bool = True) -> Run:
    """Read a finished run: config, model (CPU, eval mode), history, metrics, scaler.

    ``history=False``: ``history.csv`` is not read (``Run.history`` is then empty):
    a forecast does not need it.
    A run whose training did not finish (no ``model.safetensors``) is an InputError
    that says how to resume it; so is a missing or damaged final file, saying how to
    write it again where the run has a checkpoint.
    """
    run_dir = _check_run_dir(run_dir)
    config, _, scaler = read_config(run_dir)
    resume = f"nsteplstm train --resume {command_path(run_dir)}"
    has_checkpoint = (run_dir / CHECKPOINT_FILE).exists()
    if not (run_dir / MODEL_FILE).exists():
        hint = f"; resume it with: {resume}" if has_checkpoint else ""
        raise InputError(f"{run_dir / MODEL_FILE}: missing, the training did not finish{hint}")
    # A damaged metrics.json beside forecasts: writing it again would drop their records.
    again = f", or delete it and run {resume}, which writes it again without them"
    forecast_records(run_dir, "repair it" + (again if has_checkpoint else ""))
    try:
        model = load_model(run_dir)
        rows = read_history(run_dir) if history else []
        metrics = read_metrics(run_dir)
    except InputError as e:
        if not has_checkpoint:
            raise
        raise InputError(
            f"{e}; {resume} writes the run's final files again from its checkpoint"
        ) from None
    return Run(
        run_dir,
        config,
        model,
        rows,
        metrics,
        scaler,
        stored_data_digest(run_dir),
        stored_data_header(run_dir),
        stored_training_rows(run_dir),
    )


# ------------------------------------------------------------------ checkpoints


@dataclass
class Checkpoint:
    """Training state between two batches.

    ``tensors``: ``model.<name>`` (weights), ``optim.<i>.<name>`` (Adam state of the
    i-th parameter: ``step``, ``exp_avg``, ``exp_avg_sq``) and ``best.<name>`` (the
    best-validation weights, when kept). ``state``: JSON-able bookkeeping: ``epoch``
    (finished epochs), ``batch`` (batches done of the next epoch), random generator
    states, history, best epoch; see :mod:`nsteplstm.train`.
    """

    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]
    name: str = ""  # the weights file it was read from


def checkpoint_weights_name(epoch: int, batch: int) -> str:
    """``checkpoint-<epoch>.safetensors`` after ``epoch`` finished epochs, or
    ``checkpoint-<epoch>-<batch>.safetensors`` when ``batch`` batches of the next are done."""
    return (
        f"checkpoint-{epoch}.safetensors"
        if batch == 0
        else f"checkpoint-{epoch}-{batch}.safetensors"
    )


def save_checkpoint(run_dir: str | Path, checkpoint: Checkpoint) -> None:
    """Write the weights file, then ``checkpoint.json`` naming it, then delete older weights.

    Each write is atomic and the JSON is written last, so at any instant
    ``checkpoint.json`` names a complete weights file: a crash leaves the previous
    checkpoint or the new one.
    """
    state = checkpoint.state
    name = checkpoint_weights_name(int(state["epoch"]), int(state["batch"]))
    weights = output_path(run_dir, name)
    atomic_write(weights, Tensors(checkpoint.tensors, {"format_version": "1"}))
    doc = {"format_version": FORMAT_VERSION, "weights": name, **state}
    atomic_write(output_path(run_dir, CHECKPOINT_FILE), _dumps(doc))
    for old in _checkpoint_weights(Path(run_dir)):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """The checkpoint of ``run_dir``, or None when it has none (training never
    reached one). The tensors are not checked against a model here: see
    :func:`check_checkpoint_tensors`."""
    run_dir = _check_run_dir(run_dir)
    path = output_path(run_dir, CHECKPOINT_FILE)
    if not path.exists():
        return None
    doc = _read_json(path, CHECKPOINT_FILE)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: {CHECKPOINT_FILE} must hold a JSON object")
    _check_version(doc, path)
    name = doc.get("weights")
    if not isinstance(name, str) or not _CHECKPOINT_WEIGHTS.fullmatch(name):
        raise InputError(f"{path}: 'weights' must name a checkpoint-*.safetensors file")
    for key in ("epoch", "batch"):
        check_int(f"{path}: '{key}'", doc.get(key), minimum=0)
    tensors = _read_tensors(output_path(run_dir, name), name)
    state = {k: v for k, v in doc.items() if k not in ("format_version", "weights")}
    return Checkpoint(tensors, state, name)


def check_checkpoint_tensors(
    run_dir: str | Path, checkpoint: Checkpoint, expected: dict[str, torch.Tensor]
) -> None:
    """InputError unless the checkpoint's tensors are exactly ``expected``'s names,
    shapes and dtypes (and finite)."""
    name = checkpoint.name or CHECKPOINT_FILE
    _check_tensors(checkpoint.tensors, expected, Path(run_dir) / name, name)
