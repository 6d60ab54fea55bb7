"""The methods of dataclasses compiled once per installation (dataclass_code.py, issue 18): the
same code as the standard library compiles, taken from a file on the next start, and a file that
is damaged, foreign or unwritable costing only time."""

from __future__ import annotations

import dataclasses
import inspect
import os
import stat
import subprocess
import sys
import textwrap
import types

import pytest

from helpdesk_fetch import dataclass_code
from tests.proc import ROOT, environment

# Every kind of method dataclasses writes: __init__ with defaults, factories, keyword-only and
# init-only fields and __post_init__; __repr__, __eq__, ordering, __hash__; a frozen class's
# __setattr__ and __delattr__. Annotations as text (this module's __future__ import must not
# leak into the generated code: dataclasses' own exec has no such import).
CLASSES = textwrap.dedent('''
    import dataclasses
    from dataclasses import InitVar, KW_ONLY, dataclass, field

    @dataclass(frozen=True, order=True)
    class Table:
        name: str
        port: int = 993
        tags: tuple = ()
        seen: list = field(default_factory=list, compare=False)
        _: KW_ONLY
        secret: str = field(default="", repr=False)

    @dataclass
    class Counter:
        start: InitVar[int]
        count: int = field(init=False)
        label: "str" = "x"

        def __post_init__(self, start):
            self.count = start * 2
''')


def _define(name: str) -> dict:
    """CLASSES defined in a new module *name* (dataclasses looks up a class's module)."""
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(CLASSES, f"<{name}>", "exec", dont_inherit=True), vars(module))  # noqa: S102
    finally:
        del sys.modules[name]
    return vars(module)


def _methods(cls: type) -> dict[str, object]:
    """The methods dataclasses wrote for *cls* (__repr__ under its recursion guard)."""
    methods = {name: inspect.unwrap(value) for name, value in vars(cls).items()
               if inspect.isfunction(value)}
    return {name: function for name, function in methods.items()
            if function.__code__.co_filename == "<string>"}


def _code(function) -> tuple:
    c = function.__code__
    return (c.co_code, c.co_consts, c.co_names, c.co_varnames, c.co_flags,
            function.__defaults__, function.__kwdefaults__, repr(function.__annotations__))


@pytest.fixture
def cache_at(tmp_path, monkeypatch):
    """Installs a cache in a file of tmp_path (by name); dataclasses' exec is restored after."""
    installed = []
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # whatever PYTHONDONTWRITEBYTECODE

    def install(name: str = "methods.code") -> dataclass_code.CodeCache:
        dataclass_code.uninstall()
        installed.append(dataclass_code.install(str(tmp_path / name)))
        return installed[-1]

    yield install
    dataclass_code.uninstall()


def test_the_methods_are_the_code_the_standard_library_compiles(cache_at):
    dataclass_code.uninstall()
    plain = _define("plain")
    compiled = cache_at()
    first = _define("first")
    compiled.save()
    again = cache_at()  # a new start: the file written above
    second = _define("second")

    assert compiled.misses > 10 and compiled.hits == 0
    assert again.hits == compiled.misses and again.misses == 0
    for cls in ("Table", "Counter"):
        expected = _methods(plain[cls])
        assert set(expected) >= {"__init__", "__repr__", "__eq__"}
        for namespace in (first, second):
            methods = _methods(namespace[cls])
            assert methods.keys() == expected.keys()
            for name, function in methods.items():
                assert _code(function) == _code(expected[name]), (cls, name)
                assert str(inspect.signature(function)) == str(inspect.signature(expected[name]))
    table, counter = second["Table"], second["Counter"]
    a = table("desk", tags=("x",), secret="s")
    assert a == table("desk", tags=("x",), secret="s") != table("desk", tags=("x",), secret="t")
    assert table("desk", seen=[1]) == table("desk")  # compare=False
    assert a < table("desk", 995) and hash(a) == hash(table("desk", tags=("x",), secret="s"))
    assert repr(a) == "Table(name='desk', port=993, tags=('x',), seen=[])"
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.port = 1
    with pytest.raises(TypeError):
        table("desk", 993, (), [], "s")  # secret is keyword-only
    assert counter(3).count == 6
    assert repr(counter.__init__.__annotations__) == repr(plain["Counter"].__init__.__annotations__)


def test_dataclasses_compiles_through_the_name_exec_of_its_module(cache_at):
    """What install() relies on: when a Python release stops calling exec there, this fails
    (and the tool only loses the time, never a class)."""
    cache = cache_at()

    @dataclasses.dataclass
    class Probe:
        value: int = 0

    assert cache.misses >= 3  # __init__, __repr__, __eq__
    assert Probe(2) == Probe(2)


def test_the_command_and_a_second_start_take_the_code_from_the_file(tmp_path):
    """The entry point installs the cache; a second process compiles nothing the first did."""
    path = tmp_path / "methods.code"
    script = textwrap.dedent(f"""
        import sys
        from helpdesk_fetch import __main__ as entry, dataclass_code
        real = dataclass_code.install
        caches = []
        def install(path=None):
            caches.append(real({str(path)!r}))
            return caches[-1]
        dataclass_code.install = install
        sys.argv = ["helpdesk-fetch", "accounts", "--help"]
        try:
            entry.main()
        except SystemExit:
            pass
        import dataclasses
        assert dataclasses.exec.__self__ is caches[0]
        print("CACHE", caches[0].hits, caches[0].misses)
    """)

    def start() -> tuple[int, int]:
        env = environment()
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=ROOT, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        line = next(x for x in proc.stdout.splitlines() if x.startswith("CACHE "))
        hits, misses = map(int, line.split()[1:])
        return hits, misses

    hits, misses = start()
    assert hits == 0 and misses > 20  # compiled, and written
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    hits, misses = start()
    assert hits > 0 and misses == 0


def test_a_damaged_or_foreign_file_is_not_used_and_is_written_anew(cache_at, tmp_path):
    path = tmp_path / "methods.code"
    for content in (b"not marshal at all", dataclass_code._HEADER + b"\xff\x00garbage",
                    b"helpdesk-fetch dataclass code\nPython 2.7\noptimize 0\n" + b"x" * 40):
        path.write_bytes(content)
        path.chmod(0o644)
        cache = cache_at()
        assert cache.codes == {}
        _define("damaged")
        cache.save()
        assert dataclass_code.read(str(path)).keys() == cache.codes.keys()


def test_a_file_others_could_write_is_not_used(cache_at, tmp_path):
    cache = cache_at()
    _define("shared")
    cache.save()
    path = tmp_path / "methods.code"
    assert dataclass_code.read(str(path))
    path.chmod(0o666)
    assert dataclass_code.read(str(path)) == {}
    path.chmod(0o620)
    assert dataclass_code.read(str(path)) == {}


def test_where_nothing_can_be_written_only_time_is_lost(cache_at, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    cache = cache_at("a-file/methods.code")
    namespace = _define("readonly")
    cache.save()  # no directory can be made there: no file, no error
    assert (tmp_path / "a-file").read_text() == ""
    assert namespace["Counter"](1).count == 2

    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # PYTHONDONTWRITEBYTECODE, -B
    cache = cache_at()
    _define("no-bytecode")
    cache.save()
    assert not (tmp_path / "methods.code").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_full_file_keeps_only_what_the_writing_process_used(cache_at, tmp_path, monkeypatch):
    cache = cache_at()
    _define("old")
    for number in range(20):  # classes since changed: their texts are never asked for again
        cache.compiled(f"x = {number}")
    cache.save()
    monkeypatch.setattr(dataclass_code, "MAX_ENTRIES", 20)

    cache = cache_at()
    _define("new")
    cache.compiled("y = 1")
    cache.save()

    kept = dataclass_code.read(str(tmp_path / "methods.code"))
    assert "y = 1" in kept and not any(text.startswith("x = ") for text in kept)
    assert kept.keys() == cache.used


def test_a_save_keeps_what_another_process_wrote_meanwhile(cache_at, tmp_path):
    one, other = cache_at(), dataclass_code.CodeCache(str(tmp_path / "methods.code"))
    one.compiled("a = 1")
    other.compiled("b = 2")
    other.save()
    one.save()
    assert {"a = 1", "b = 2"} <= dataclass_code.read(str(tmp_path / "methods.code")).keys()


def test_a_save_writes_no_file_another_process_is_writing(cache_at, tmp_path):
    """Another process of this id (in another container, sharing the installation) writing its
    own temporary file: that file is left alone."""
    cache = cache_at()
    cache.compiled("a = 1")
    theirs = tmp_path / f"methods.code.{os.getpid()}.tmp"
    theirs.write_bytes(b"half written")

    cache.save()

    assert theirs.read_bytes() == b"half written"
    assert "a = 1" in dataclass_code.read(str(tmp_path / "methods.code"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["methods.code", theirs.name]


SEEN = "module scope"


def test_exec_without_globals_runs_in_the_callers_scope(cache_at):
    cache = cache_at()
    found = {}
    cache.exec("found['value'] = SEEN")  # found: a local here; SEEN: a global of this module
    assert found == {"value": "module scope"}
    namespace: dict = {}
    cache.exec(compile("z = 3", "<code>", "exec"), namespace)  # code objects pass through
    assert namespace["z"] == 3


def test_the_default_file_lies_beside_the_modules_own_bytecode():
    path = dataclass_code.default_path()
    assert path is not None
    assert os.path.dirname(path) == os.path.dirname(dataclass_code.__spec__.cached)
    assert os.path.basename(path).startswith("dataclass_code.") and path.endswith(".code")


def test_where_the_installation_is_not_the_users_the_file_is_in_its_cache(cache_at, tmp_path,
                                                                          monkeypatch):
    """A system-wide installation (root's) run by a service user: its own cache directory,
    $XDG_CACHE_HOME, else ~/.cache of its passwd entry (runuser keeps root's $HOME)."""
    import pwd

    monkeypatch.setattr(os, "access", lambda path, mode: False)  # __pycache__: root's
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tag = sys.implementation.cache_tag
    path = dataclass_code.default_path()
    assert path == str(tmp_path / "cache" / "helpdesk-fetch" / f"dataclass_code.{tag}.code")

    cache = cache_at(os.path.relpath(path, tmp_path))
    _define("service-user")
    cache.save()
    assert dataclass_code.read(path).keys() == cache.codes.keys()
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700

    monkeypatch.delenv("XDG_CACHE_HOME")
    home = pwd.getpwuid(os.geteuid()).pw_dir
    assert dataclass_code.default_path() == os.path.join(
        home, ".cache", "helpdesk-fetch", f"dataclass_code.{tag}.code")


def test_a_file_not_this_users_a_link_or_no_file_at_all_is_not_used(cache_at, tmp_path):
    """Another user's file, a symbolic link to a good one, a directory or a FIFO at the path:
    nothing read (a FIFO would block), nothing raised: only the time is lost."""
    cache = cache_at()
    _define("owned")
    cache.save()
    path = tmp_path / "methods.code"
    assert dataclass_code.read(str(path))
    link = tmp_path / "link.code"
    link.symlink_to(path)
    assert dataclass_code.read(str(link)) == {}
    if os.geteuid() == 0:  # only root can give a file away
        os.chown(path, 65534, 65534)
        assert dataclass_code.read(str(path)) == {}
    (tmp_path / "a-directory.code").mkdir()
    os.mkfifo(tmp_path / "a-fifo.code")
    for name in ("a-directory.code", "a-fifo.code"):
        assert dataclass_code.read(str(tmp_path / name)) == {}
        cache = cache_at(name)  # installed without a word
        assert cache.codes == {}


def test_another_optimization_level_is_another_file(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    plain = dataclass_code.default_path()
    monkeypatch.setattr(sys, "flags", type("Flags", (), {"optimize": 1})())
    assert dataclass_code.default_path() == plain.removesuffix(".code") + ".opt-1.code"
