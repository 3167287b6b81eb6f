"""Where and how the tools write: output paths checked before any work, atomic writes, caches.

Every command checks its output paths with :func:`require_writable_dir` or
:func:`require_writable_file` before it decodes, renders or trains anything, so a path
that is a file, a parent that is a file or a folder it may not write gives one line that
names the option, not a traceback minutes later. The checks create nothing: they probe
the nearest folder that exists by creating (and removing) an empty folder in it, which
is exactly the permission the tool needs later and which ``os.access`` cannot tell
(read-only mounts, immutable folders, root). Files are then written with
:func:`atomic_write`, so an interrupted command leaves the old file or the new one.

Caches (:func:`cache_dir`) live under ``$DNA_DEPTH_CACHE_DIR``, else
``$XDG_CACHE_HOME/dna_depth``, else ``~/.cache/dna_depth``. A cache is only a speed-up:
when that folder cannot be written (no home folder, a read-only home, a service user),
the tools say so in one line and use a temporary folder, removed when the process exits.
A cache folder the user names explicitly (``--cache-dir``) is checked like an output.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from .errors import UserError

CACHE_ENVIRONMENT_VARIABLE = "DNA_DEPTH_CACHE_DIR"
"""Environment variable naming the root of every dna_depth cache."""


def current_umask() -> int:
    """This process's file-creation mask (read without changing it for longer than a call)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def describe_os_error(error: OSError) -> str:
    """``"permission denied: '/some/path'"``: an ``OSError`` as the one line a user reads."""
    reason = (error.strerror or str(error)).lower()
    target = error.filename
    return f"{reason}: {str(target)!r}" if target else reason


def _unwritable_reason(path: Path) -> str | None:
    """Why a folder cannot be created or written at ``path``, or ``None`` when it can."""
    try:
        return _probe(path)
    except OSError as error:  # a parent this process may not even look into
        return f"cannot look into {str(error.filename or path)!r} ({(error.strerror or str(error)).lower()})"


def _probe(path: Path) -> str | None:
    if path.exists() and not path.is_dir():
        return f"{str(path)!r} is a file, not a folder"
    ancestor = path
    while not ancestor.exists():
        if ancestor.is_symlink():
            return f"{str(ancestor)!r} is a broken link"
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{str(ancestor)!r} is a file, not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".dna_depth_write_probe.", dir=ancestor))
    except OSError as error:
        return f"cannot write in {str(ancestor)!r} ({(error.strerror or str(error)).lower()})"
    return None


def require_writable_dir(path: str | Path, option: str) -> Path:
    """Check that ``path`` is, or can be created as, a folder this process can write in.

    Nothing is created. Call it before the work that will write there.

    Args:
        path: the output folder.
        option: how the user named it, for the message (``"-o"``, ``"--output-dir"``,
            ``"runtime.output_dir"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        UserError: ``path`` or one of its parents is a file, or the folder cannot be written.
    """
    path = Path(path)
    reason = _unwritable_reason(path)
    if reason is not None:
        raise UserError(f"{option} {str(path)!r}: {reason}; choose a folder you can write")
    return path


def require_writable_file(path: str | Path, option: str) -> Path:
    """Check that a file can be written (created or atomically replaced) at ``path``.

    Raises:
        UserError: ``path`` is a folder, or its folder cannot be created or written.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {str(path)!r} is a folder; give a file name, e.g. {str(path / 'model.onnx')!r}")
    reason = _unwritable_reason(path.parent)
    if reason is not None:
        raise UserError(f"{option} {str(path)!r}: {reason}; choose a place you can write")
    return path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)`` then rename it onto ``path`` in one step.

    The temporary file sits in the same folder so the rename is atomic: a crash or a kill
    leaves either the previous file or the new one, never a truncated file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        # mkstemp makes the file private (0600), and so do writers that replace it with a
        # temporary file of their own (safetensors): give it what a plain open() would.
        os.chmod(temporary, 0o666 & ~current_umask())
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def default_cache_root() -> tuple[Path | None, str | None]:
    """The root of the dna_depth caches, or ``(None, why)`` when there is no usable home.

    ``$DNA_DEPTH_CACHE_DIR``, else ``$XDG_CACHE_HOME/dna_depth``, else
    ``~/.cache/dna_depth``; a home folder that does not exist is not created.
    """
    if os.environ.get(CACHE_ENVIRONMENT_VARIABLE):
        return Path(os.environ[CACHE_ENVIRONMENT_VARIABLE]), None
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "dna_depth", None
    try:
        home = Path.home()
    except (RuntimeError, KeyError):
        return None, "there is no home folder (HOME is not set)"
    if not home.is_dir():
        return None, f"the home folder {str(home)!r} does not exist"
    return home / ".cache" / "dna_depth", None


_temporary_caches: dict[str, Path] = {}


def temporary_cache_dir(name: str) -> Path:
    """A temporary stand-in for cache folder ``name``, one per process, removed at exit."""
    if name not in _temporary_caches:
        folder = Path(tempfile.mkdtemp(prefix=f"dna_depth_{name}_"))
        # Forked data-loader workers leave through os._exit, so only this process removes it.
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _temporary_caches[name] = folder
    return _temporary_caches[name]


def cache_dir(name: str) -> Path:
    """The default cache folder ``name`` (``"bag_frames"``, ``"onnx"``) under
    :func:`default_cache_root`, or, when it cannot be written, a temporary folder removed
    at exit (with one warning saying so and how to keep the cache).
    """
    root, reason = default_cache_root()
    if root is not None:
        reason = _unwritable_reason(root / name)
        if reason is None:
            return root / name
    folder = temporary_cache_dir(name)
    warnings.warn(
        f"the {name} cache cannot be kept ({reason}); using {folder}, removed at exit. "
        f"Set {CACHE_ENVIRONMENT_VARIABLE} to a writable folder to keep it",
        stacklevel=2,
    )
    return folder
