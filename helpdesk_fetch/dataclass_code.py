"""The code ``dataclasses`` writes for each class, compiled once per installation (issue 18).

For every dataclass the standard library writes its methods (``__init__``, ``__repr__``,
``__eq__``, a frozen class's ``__setattr__`` and ``__delattr__``, ...) as source text and
compiles that with ``exec``, in every process. Compiling is most of what a dataclass costs: a
cron run that finds no mail creates 29 of them, 144 methods, 17-23 ms of its ~140 (README,
Performance). Python keeps the compiled code of modules in ``__pycache__``; this does the same
for that text. ``install`` gives the ``dataclasses`` module an ``exec`` of its own (that module
only: the builtin stays as it is everywhere else), which compiles a text once and afterwards
takes its code from a file beside this module's ``.pyc``, written at exit when something new
was compiled.

What runs is what ``exec`` of the same text runs: the code of ``compile(text)`` with the flags
``exec`` has in ``dataclasses`` (no ``__future__`` feature inherited), in the same globals and
namespace. The file is keyed by the whole text, so a changed class is compiled anew, and holds
code of this interpreter build and optimization level only. It lies beside the ``.pyc`` files
where the user may write there, else in the user's cache directory (``default_path``). A file
that cannot be read, is damaged, or could have been written by someone else (another owner
than this user or root, or writable by group or others) is not used; where none can be written
(``PYTHONDONTWRITEBYTECODE``, no cache directory), none is: only the time is lost, never a
class.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
from types import CodeType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

# Beyond this many texts (every class of every command is a few hundred), the file is written
# anew with what the writing process used: texts of classes since changed are dropped.
MAX_ENTRIES = 768  # reading 768 takes ~5 ms; 4,096 took 25-29
_HEADER = (f"helpdesk-fetch dataclass code\n{sys.version}\n"
           f"optimize {sys.flags.optimize}\n").encode()


class CodeCache:
    """Compiled code by source text, read from and written to *path* (None: kept in memory)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.codes: dict[str, CodeType] = read(path) if path else {}
        self.used: set[str] = set()
        self.hits = self.misses = 0

    def exec(self, source: object, globals: dict[str, object] | None = None,
             locals: Mapping[str, object] | None = None, /) -> None:
        """``exec`` as dataclasses calls it; source text compiled through the cache."""
        if globals is None:  # the caller's scope, as the builtin would take it
            frame = sys._getframe(1)
            globals = frame.f_globals
            locals = frame.f_locals if locals is None else locals
        if isinstance(source, str):
            source = self.compiled(source)
        exec(source, globals, locals)  # type: ignore[arg-type]  # noqa: S102 - dataclasses' own

    def compiled(self, source: str) -> CodeType:
        code = self.codes.get(source)
        if type(code) is CodeType:
            self.hits += 1
        else:
            if not self.misses and self.path:
                import atexit

                atexit.register(self.save)
            self.misses += 1
            code = self.codes[source] = compile(source, "<string>", "exec", dont_inherit=True)
        self.used.add(source)
        return code

    def save(self) -> None:
        """Write what was compiled, with what another process wrote meanwhile (the file is
        replaced whole: a reader sees the old one or the new one)."""
        if not self.misses or not self.path or sys.dont_write_bytecode:
            return
        codes = {**read(self.path), **self.codes}
        if len(codes) > MAX_ENTRIES:
            codes = {text: code for text, code in self.codes.items() if text in self.used}
        # A name of its own: two containers sharing an installation can have one process id
        temporary = f"{self.path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        fd = -1
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as file:
                os.fchmod(fd, 0o644)  # whatever the umask: nobody else may write it
                file.write(_HEADER + marshal.dumps(codes))
            os.replace(temporary, self.path)
        except OSError:  # a read-only installation: compiled again next time
            if fd >= 0:  # ours to remove; not one of that name another process made
                try:
                    os.unlink(temporary)
                except OSError:
                    pass


def read(path: str) -> dict[str, CodeType]:
    """The compiled code in *path*; nothing if it is missing, not a regular file, damaged, of
    another interpreter, or could have been written by another user."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as file:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode) or status.st_mode & 0o022 \
                    or status.st_uid not in (0, os.geteuid()):
                return {}
            data = file.read()
    except OSError:
        return {}
    if not data.startswith(_HEADER):
        return {}
    try:
        codes = marshal.loads(memoryview(data)[len(_HEADER):])
    except (EOFError, ValueError, TypeError):
        return {}
    return codes if isinstance(codes, dict) else {}


def default_path() -> str | None:
    """Beside this module's ``.pyc`` (``__pycache__``, or ``sys.pycache_prefix``'s tree) where
    this user may write: an installation of its own, a checkout. Else (an installation of
    root's, run by a service user) in the user's cache directory: ``$XDG_CACHE_HOME``, else
    ``.cache`` in the home directory of the user's passwd entry (``runuser`` keeps root's
    ``$HOME``)."""
    cached: str | None = getattr(__spec__, "cached", None)  # None: run as a script
    if cached and cached.endswith(".pyc") and os.access(os.path.dirname(cached), os.W_OK):
        return cached.removesuffix(".pyc") + ".code"
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):
        import pwd

        try:
            base = os.path.join(pwd.getpwuid(os.geteuid()).pw_dir, ".cache")
        except KeyError:  # a uid without a passwd entry: no cache
            return None
    return os.path.join(base, "helpdesk-fetch",
                        f"dataclass_code.{sys.implementation.cache_tag}"
                        f"{f'.opt-{sys.flags.optimize}' if sys.flags.optimize else ''}.code")


def install(path: str | None = None) -> CodeCache:
    """Compile the methods of the dataclasses created from now on through a cache in *path*
    (default: ``default_path()``); the installed cache if there is one already."""
    import dataclasses

    installed = getattr(dataclasses, "exec", None)
    if isinstance(getattr(installed, "__self__", None), CodeCache):
        return installed.__self__  # type: ignore[union-attr, no-any-return]
    cache = CodeCache(path or default_path())
    dataclasses.exec = cache.exec  # type: ignore[attr-defined]
    return cache


def uninstall() -> None:
    """``dataclasses`` back to the builtin ``exec`` (tests)."""
    import dataclasses

    vars(dataclasses).pop("exec", None)
