"""Every file a run writes, and every file deepq reads that someone else may have made, goes
through here.

Reading (:func:`read_regular_file`, :func:`read_json_file`): only a regular file, never through a
symlink, never a FIFO or device; its size is checked against a bound *before* anything is read,
and it is read in bounded chunks, so ``/dev/zero``, a 200 GB sparse file or a FIFO is one clear
error instead of exhausted memory or a hang. JSON nested too deep to parse is an error too.

Writing (:func:`writing`, :func:`replacing`, :func:`write_json`, :func:`write_text_file`): any
OSError (a full disk, a read-only file system, a name too long, a path through a file) becomes
one :class:`RunWriteError` naming the file. A file is never written through a symlink, and never
in place: its bytes go to a temporary file created exclusively beside it (a new name, so nothing
planted there can redirect the write) and renamed over it only once complete, so a failure
leaves the previous file, or none, never a half-written or empty one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepq.errors import DeepQError, UsageError

CHUNK_BYTES = 1 << 20
IMAGE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")  # what matplotlib writes for --out
MAX_JSON_BYTES = 64 << 20  # run files and specs: far above what deepq writes
# Values in one JSON file: a summary of 1,000 evaluations of 100 episodes holds ~200,000; a
# million of the smallest JSON values take ~250 MB once parsed.
MAX_JSON_ITEMS = 1_000_000


class RunWriteError(DeepQError):
    """A file could not be written (full disk, read-only file system, ...)."""

    exit_code = 1


class UnreadableFile(DeepQError):
    """A file is missing, not a regular file, too large, or not what it should hold."""

    exit_code = 1


def refuse_symlinks_within(directory: Path) -> None:
    """A directory deepq will write into and remove things from (a run or a sweep to resume)
    holds no symlink at any depth, itself included: any one could point a write or a removal
    anywhere. Walked without following links; one UnreadableFile names the first link found."""
    if directory.is_symlink():
        raise UnreadableFile(f"{directory} is a symlink; deepq resumes only real directories")
    folders = [directory]
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        raise UnreadableFile(
                            f"{entry.path} is a symlink; deepq resumes only directories without one"
                        )
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(Path(entry.path))
        except OSError as exc:
            raise UnreadableFile(f"{directory} cannot be read ({describe_os_error(exc)})") from None


def describe_os_error(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn any OSError raised inside into one RunWriteError naming ``path``. A ``path`` that is
    a symlink is refused first: deepq never writes through one (a run directory from someone
    else could point progress.csv at any file of yours)."""
    if Path(path).is_symlink():
        raise RunWriteError(
            f"cannot write {path}: it is a symlink, and deepq never writes through one"
        )
    try:
        yield
    except OSError as exc:
        raise RunWriteError(f"cannot write {path}: {describe_os_error(exc)}") from None


def require_suffix(path: str | Path, suffixes: tuple[str, ...], flag: str = "--out") -> None:
    """An output file's suffix must name a format deepq writes there (``flag`` is checked
    before any work is done); otherwise one UsageError."""
    if Path(path).suffix.lower() not in suffixes:
        names = " or ".join([", ".join(suffixes[:-1]), suffixes[-1]] if suffixes[:-1] else suffixes)
        raise UsageError(f"{flag} {path} must end in {names}")


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Write ``path`` atomically: the block writes the temporary file it is given (a new file
    beside ``path``, created with O_EXCL under a random name, with ``path``'s suffix so that
    writers that pick a format by it still do), which then replaces ``path`` in one rename. On
    any failure the temporary file is removed and ``path`` is as it was. Errors are
    :func:`writing`'s: one RunWriteError naming ``path``; a symlink at ``path`` is refused."""
    path = Path(path)
    with writing(path):
        if not path.parent.exists():  # (a file there: the open below says "Not a directory")
            path.parent.mkdir(parents=True, exist_ok=True)
        temporary = _new_file_beside(path)
        try:
            yield temporary
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _new_file_beside(path: Path) -> Path:
    """An empty file created exclusively next to ``path``, under a name nobody could plant (not
    tempfile.mkstemp: its files are private, 0600, where an output should get the user's umask,
    as any file a program writes)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temporary = path.with_name(f".{path.name[:100]}.{secrets.token_hex(6)}.tmp{path.suffix}")
        try:
            os.close(os.open(temporary, flags, 0o666))
            return temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def write_text_file(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` through :func:`replacing` (atomic, never through a link)."""
    with replacing(path) as temporary:
        temporary.write_bytes(text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (:func:`replacing`), so a reader never sees half a file.

    Non-finite floats are refused (``NaN`` is not JSON): callers pass finite numbers or None.
    """
    write_text_file(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def memory_bytes() -> int:
    """This machine's physical memory (the bound for what deepq agrees to load or allocate)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a small laptop
        return 8 << 30


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def read_regular_file(
    path: str | Path,
    max_bytes: int,
    expected_bytes: int | None = None,
    *,
    follow_symlinks: bool = False,
    sha256: str | None = None,
) -> bytearray:
    """The bytes of the regular file at ``path``, refusing before any read a file larger than
    ``max_bytes`` or whose size is not ``expected_bytes``. A symlink is refused unless
    ``follow_symlinks`` (a path the user typed, not a file inside a checkpoint).

    The file is read once, in chunks, into one buffer of its size (a 2.5 GB replay peaks at
    2.5 GB, not twice that); with ``sha256`` the chunks are hashed as they arrive, and a file
    whose hash is not that one is refused."""
    path = Path(path)
    with open_regular_file(path, max_bytes, expected_bytes, follow_symlinks=follow_symlinks) as (
        handle,
        size,
    ):
        try:
            data = bytearray(size)
            view, digest, done = memoryview(data), hashlib.sha256(), 0
            while done < size:
                got = handle.readinto(view[done : done + CHUNK_BYTES])
                if not got:
                    break
                if sha256 is not None:
                    digest.update(view[done : done + got])
                done += got
            view.release()
            if done != size or handle.read(1):  # shorter or longer: it changed while read
                raise UnreadableFile(f"{path} changed size while it was read")
        except OSError as exc:
            raise UnreadableFile(f"{path} cannot be read ({describe_os_error(exc)})") from None
    if sha256 is not None and digest.hexdigest() != sha256:
        raise UnreadableFile(f"{path} is corrupt (sha256 does not match its manifest)")
    return data


@contextmanager
def open_regular_file(
    path: Path, max_bytes: int, expected_bytes: int | None = None, *, follow_symlinks: bool = False
) -> Iterator[tuple[Any, int]]:
    """(an unbuffered binary file, its size) of the regular file at ``path``, opened without
    blocking (a FIFO never hangs) and, unless ``follow_symlinks``, not through a symlink; its
    size checked against ``max_bytes`` and ``expected_bytes`` before anything is read."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UnreadableFile(f"{path} is missing") from None
    except OSError as exc:  # ELOOP: a symlink; EACCES; ENAMETOOLONG; ...
        why = "is a symlink" if path.is_symlink() else f"cannot be read ({describe_os_error(exc)})"
        raise UnreadableFile(f"{path} {why}") from None
    try:
        size = _checked_size(path, os.fstat(fd), max_bytes, expected_bytes)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb", buffering=0) as handle:  # a regular file: fdopen takes it
        yield handle, size


MAX_LINE_BYTES = 64 << 10


def read_lines(path: str | Path, max_bytes: int, *, follow_symlinks: bool = True) -> Iterator[str]:
    """The UTF-8 lines of the regular file at ``path`` (with their line ends), one at a time,
    so that a file of millions of lines is never held whole; a line longer than
    MAX_LINE_BYTES, or not UTF-8, is one UnreadableFile."""
    path = Path(path)
    with open_regular_file(path, max_bytes, follow_symlinks=follow_symlinks) as (raw, _):
        handle = io.BufferedReader(raw, CHUNK_BYTES)
        for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(line) > MAX_LINE_BYTES:
                raise UnreadableFile(
                    f"{path}: line {number} is longer than {MAX_LINE_BYTES:,} bytes"
                )
            try:
                yield line.decode()
            except UnicodeDecodeError:
                raise UnreadableFile(f"{path}: line {number} is not UTF-8 text") from None


def _checked_size(
    path: Path, info: os.stat_result, max_bytes: int, expected_bytes: int | None
) -> int:
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFile(f"{path} is not a regular file")
    size = info.st_size
    if expected_bytes is not None and size != expected_bytes:
        raise UnreadableFile(
            f"{path} is corrupt or truncated: {size} bytes, where its manifest says "
            f"{expected_bytes}"
        )
    if size > max_bytes:
        raise UnreadableFile(
            f"{path} is {format_bytes(size)}, more than the {format_bytes(max_bytes)} "
            "deepq reads for it"
        )
    return size


def parse_json(
    data: bytes | bytearray | str, source: str | Path, max_items: int = MAX_JSON_ITEMS
) -> Any:
    """JSON from bytes; invalid, too deeply nested or non-UTF-8 input is one UnreadableFile, and
    so is JSON of more than ``max_items`` values, counted before it is parsed: a few MB of
    ``{},{},...`` would otherwise become millions of objects (22M empty dicts took 5 GB)."""
    separators = (",", "[", "{") if isinstance(data, str) else (b",", b"[", b"{")
    items = sum(data.count(separator) for separator in separators)  # an upper bound of values
    if items > max_items:
        raise UnreadableFile(f"{source} holds more than the {max_items:,} values deepq reads in it")
    try:
        return json.loads(data)
    except RecursionError:
        raise UnreadableFile(f"{source} is nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"{source} is not valid JSON ({exc})") from None


def read_json_file(
    path: str | Path, max_bytes: int = MAX_JSON_BYTES, max_items: int = MAX_JSON_ITEMS
) -> Any:
    """The JSON in the regular file at ``path`` (bounded, see :func:`read_regular_file` and
    :func:`parse_json`)."""
    return parse_json(read_regular_file(path, max_bytes, follow_symlinks=True), path, max_items)


def read_text_file(
    path: str | Path, max_bytes: int = MAX_JSON_BYTES, *, follow_symlinks: bool = True
) -> str:
    """The UTF-8 text of the regular file at ``path`` (bounded, see :func:`read_regular_file`)."""
    data = read_regular_file(path, max_bytes, follow_symlinks=follow_symlinks)
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise UnreadableFile(f"{path} is not UTF-8 text") from None
