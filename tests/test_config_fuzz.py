"""Hostile configs: seeded mutations of the documented config through `validate` and
`config set`. Whatever the file or the value says, the answer is an exit code (0, 2 or 78) and
one-line errors, never a traceback. And a Ctrl-C at any moment of a command's start.

Most cases run in process (``cli.main``) for speed; a handful go through the real CLI.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import DATA, require

import edge_pose.config.loading as config_mod
from edge_pose import cli
from edge_pose.cli import EX_INTERRUPTED
from edge_pose.errors import EX_CONFIG, EX_OK, EX_USAGE

DOCUMENTED = Path(__file__).resolve().parents[1] / "config" / "edge-pose.toml"
ALLOWED = {EX_OK, EX_USAGE, EX_CONFIG}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_KEY_LINE = re.compile(r"^([a-z_]+) = (.*)$")

# Values a hostile or careless file may hold, as TOML text.
NESTING = ("[" * 3000 + "]" * 3000, "{a = " * 2000 + "1" + "}" * 2000, "[" * 400 + "]" * 400)
VALUES = (
    '"x"',
    "1",
    "-1",
    "0",
    "1.5",
    "true",
    "nan",
    "-inf",
    "1e400",
    "9" * 4000,
    "1" * 5000,  # more digits than Python converts
    "[1, 2]",
    "{a = 1}",
    "1979-05-27T07:32:00Z",
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\u001b[31mred\\u001b[0m"',
    '"line\\nbreak"',
    '"tab\\there"',
    '"\\u007f\\u0085"',
    '"~nosuchuser/x"',
    '"~nosuchuser"',
    '"file:~nosuchuser/v.mp4"',
    '"\\u202eevil"',
    '"\U0001f600"',
    '"' + "a" * 100_000 + '"',
    '""',
    '"/"',
    '"/dev/null"',
    "'\\x'",
    '"unterminated',
    *NESTING,
)


def documented_lines() -> list[str]:
    return DOCUMENTED.read_text(encoding="utf-8").splitlines()


def mutate(rng: random.Random) -> bytes:
    """One hostile variant of the documented config."""
    lines = documented_lines()
    keyed = [i for i, line in enumerate(lines) if _KEY_LINE.match(line)]
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(MUTATIONS)
        lines = kind(rng, lines, keyed)
        keyed = [i for i, line in enumerate(lines) if _KEY_LINE.match(line)]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return finish(rng, data)


def _swap_value(rng: random.Random, lines: list[str], keyed: list[int]) -> list[str]:
    i = rng.choice(keyed)
    key = _KEY_LINE.match(lines[i])[1]  # type: ignore[index]
    return [*lines[:i], f"{key} = {rng.choice(VALUES)}", *lines[i + 1 :]]


def _drop(rng: random.Random, lines: list[str], keyed: list[int]) -> list[str]:
    i = rng.choice(keyed + [i for i, line in enumerate(lines) if line.startswith("[")])
    return lines[:i] + lines[i + 1 :]


def _duplicate(rng: random.Random, lines: list[str], keyed: list[int]) -> list[str]:
    i = rng.choice(keyed + [i for i, line in enumerate(lines) if line.startswith("[")])
    j = rng.randrange(len(lines) + 1)
    return [*lines[:j], lines[i], *lines[j:]]


def _move(rng: random.Random, lines: list[str], keyed: list[int]) -> list[str]:
    i = rng.choice(keyed)
    rest = lines[:i] + lines[i + 1 :]
    j = rng.randrange(len(rest) + 1)
    return [*rest[:j], lines[i], *rest[j:]]


def _section(rng: random.Random, lines: list[str], keyed: list[int]) -> list[str]:
    header = rng.choice(
        ["[camera.x]", "[[camera]]", "[nosuch]", "camera = 1", "[mqtt]", "x = 1", "[camera"]
    )
    j = rng.randrange(len(lines) + 1)
    return [*lines[:j], header, *lines[j:]]


def _unknown_key(rng: random.Random, lines: list[str], keyed: list[int]) -> list[str]:
    i = rng.choice(keyed)
    name = rng.choice(["fsp", "password", "x" * 300, "\"a\\u0000b\"", "a.b.c"])
    return [*lines[: i + 1], f"{name} = {rng.choice(VALUES)}", *lines[i + 1 :]]


MUTATIONS: tuple[Callable[[random.Random, list[str], list[int]], list[str]], ...] = (
    _swap_value,
    _swap_value,
    _swap_value,
    _drop,
    _duplicate,
    _move,
    _section,
    _unknown_key,
)


def finish(rng: random.Random, data: bytes) -> bytes:
    """Byte-level damage on a few variants: truncation, a BOM, bytes that are not UTF-8."""
    roll = rng.random()
    if roll < 0.08:
        return data[: rng.randrange(len(data))]
    if roll < 0.11:
        return b"\xef\xbb\xbf" + data
    if roll < 0.14:
        at = rng.randrange(len(data))
        return data[:at] + bytes([rng.choice([0x00, 0x1B, 0x80, 0xFF, 0x7F])]) + data[at:]
    return data


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fixed host name, no system config, no credentials directory."""
    monkeypatch.setattr(socket, "gethostname", lambda: "pi-lab")
    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_PATH", tmp_path / "absent" / "config.toml")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def run_cli(argv: list[str]) -> tuple[int, str]:
    """`edge-pose ARGV` in process: (exit code, stdout + stderr). An exception is a failure."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue()


def check_answer(code: int, text: str, what: str) -> None:
    assert code in ALLOWED, f"{what}: exit {code}\n{text[:2000]}"
    assert "Traceback" not in text, f"{what}:\n{text[:2000]}"
    assert not _CONTROL.search(text), f"{what}: control characters in the output: {text[:500]!r}"
    for line in text.splitlines():
        assert len(line) < 1000, f"{what}: an overlong output line: {line[:200]}..."


@pytest.mark.parametrize("seed", range(6))
def test_mutated_configs_validate_without_tracebacks(tmp_path: Path, seed: int) -> None:
    """300 mutations of the documented config (50 per seed): each one a clean verdict."""
    rng = random.Random(seed)
    codes: set[int] = set()
    for n in range(50):
        path = tmp_path / f"{n}.toml"
        data = mutate(rng)
        path.write_bytes(data)
        code, text = run_cli(["validate", "--config", str(path)])
        check_answer(code, text, f"seed {seed} #{n}: {data[:300]!r}")
        codes.add(code)
    assert EX_CONFIG in codes  # the mutations really break configs


@pytest.mark.parametrize("seed", range(3))
def test_hostile_values_through_config_set(tmp_path: Path, seed: int) -> None:
    """`config set KEY=VALUE` with hostile values for random keys: a clean verdict, and a
    rejected value leaves the file as it was."""
    rng = random.Random(100 + seed)
    keys = [
        f"{section}.{_KEY_LINE.match(line)[1]}"  # type: ignore[index]
        for section, line in _keyed_lines()
    ]
    raw_values = [v.strip('"') for v in VALUES] + ["\x00", "\x1b[2J", "a\nb", "~nosuchuser/p"]
    for n in range(40):
        path = tmp_path / f"{n}.toml"
        path.write_bytes(DOCUMENTED.read_bytes())
        key = rng.choice([*keys, *HOSTILE_KEYS])
        value = rng.choice(raw_values)
        code, text = run_cli(["config", "set", "--config", str(path), f"{key}={value}"])
        check_answer(code, text, f"seed {seed} #{n}: {key}={value[:100]!r}")
        if code != EX_OK:
            assert path.read_bytes() == DOCUMENTED.read_bytes()


HOSTILE_KEYS = ("nosuch.key", "camera", "mqtt.password", "a.b.c", "a\x1b[2Jb.c", "mqtt.\x00", "")


def _keyed_lines() -> list[tuple[str, str]]:
    section, found = "", []
    for line in documented_lines():
        if line.startswith("["):
            section = line.strip("[]")
        elif _KEY_LINE.match(line):
            found.append((section, line))
    return found


CLASSES = {
    "nesting bomb (arrays)": "[camera]\nwidth = " + NESTING[0],
    "nesting bomb (inline tables)": "[camera]\nsource = " + NESTING[1],
    "nesting bomb (unknown key)": "[mqtt]\nx = " + NESTING[0],
    "unknown user in a path": '[camera]\nsource = "~nosuchuser/v.mp4"',
    "unknown user in a file: source": '[camera]\nsource = "file:~nosuchuser/v.mp4"',
    "unknown user in a password file": '[mqtt]\nusername = "u"\npassword_file = "~nosuchuser/p"',
    "unknown user in the status folder": '[status]\ndir = "~nosuchuser/run"',
    "NUL in a path": '[camera]\nsource = "/tmp/a\\u0000b.mp4"',
    "NUL in the host": '[mqtt]\nhost = "broker\\u0000.lan"',
    "escape in the host": '[mqtt]\nhost = "bro\\u001bker"',
    "bell in the topic prefix": '[mqtt]\ntopic_prefix = "a\\u0007b"',
    "overlong host": '[mqtt]\nhost = "' + "a" * 5000 + '"',
    "overlong path": '[classifier]\ntype = "knn"\npath = "/' + "a" * 5000 + '"',
    "integer past the digit limit": "[camera]\nfps = " + "9" * 5000,
}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_each_class_is_one_line_naming_the_key(tmp_path: Path, name: str) -> None:
    """Each class of hostile value is refused (exit 78) in one line that names where."""
    path = tmp_path / "config.toml"
    path.write_text(CLASSES[name], encoding="utf-8")
    code, text = run_cli(["validate", "--config", str(path)])
    check_answer(code, text, name)
    assert code == EX_CONFIG, text
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edge-pose: error: {path}: "), text


@pytest.mark.parametrize("name", ["nesting bomb (arrays)", "NUL in a path", "overlong host"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_real_cli_refuses_hostile_configs(tmp_path: Path, name: str, command: str) -> None:
    """The installed entry point, validate and run alike: exit 78, one line, no traceback."""
    path = tmp_path / "config.toml"
    path.write_text(CLASSES[name], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", command, "--config", str(path), "--no-mqtt"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    check_answer(result.returncode, result.stdout + result.stderr, name)
    assert result.returncode == EX_CONFIG
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_real_cli_config_set_refuses_a_nul(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(DOCUMENTED.read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "config", "set", "--config", str(path),
         "mqtt.host=a\x01b"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    check_answer(result.returncode, result.stdout + result.stderr, "config set NUL")
    assert result.returncode == EX_CONFIG
    assert "mqtt.host" in result.stderr
    assert path.read_bytes() == DOCUMENTED.read_bytes()


# --------------------------------------------------------------------------- Ctrl-C at start


ENTRY_POINT = Path(sys.executable).with_name("edge-pose")


CLI_SOURCE = Path(cli.__file__)
# The line of cli.py that installs edge-pose's Ctrl-C handler: from there on, Ctrl-C is one line.
HANDLER_LINE = next(
    number
    for number, line in enumerate(CLI_SOURCE.read_text().splitlines(), 1)
    if line.startswith("signal.signal(signal.SIGINT, _interrupted_while_loading)")
)
_FRAME = re.compile(r'^  File "([^"]+)", line (\d+)', re.M)


def interrupted_before_the_handler(stderr: str) -> bool:
    """Whether ``stderr`` is Python's own KeyboardInterrupt traceback from before edge-pose's
    handler existed: in Python's start-up, or in the first lines of edge_pose/__init__.py and
    cli.py. No frame may be in edge-pose code that runs after the handler is installed. Nothing
    at all is printed when the signal comes before Python has a handler of its own."""
    if not stderr:
        return True
    if not stderr.rstrip().endswith("KeyboardInterrupt"):
        return False
    package = CLI_SOURCE.parent
    for file, line in _FRAME.findall(stderr):
        path = Path(file)
        if path == CLI_SOURCE:
            if int(line) >= HANDLER_LINE:
                return False
        elif path.is_relative_to(package) and path != package / "__init__.py":
            return False
    return True


@pytest.mark.parametrize("moment", [0.05, 0.1, 0.15, 0.2, 0.3, 0.4])
def test_ctrl_c_while_starting_is_one_line_and_exit_130(
    tmp_path: Path, lightning_path: Path, moment: float
) -> None:
    """SIGINT to the real command while it imports numpy, OpenCV and the runtime: exit 130 and
    one line. The one exception is a signal that lands before edge-pose's handler exists (in
    Python's start-up, or the first lines of cli.py): Python's own handler applies then, and
    its traceback may hold no frame of edge-pose code after that point. On a busy machine any
    of these moments can land there, so the test checks where the traceback was, not when."""
    image = require(DATA / "coral" / "squat.bmp")
    proc = subprocess.Popen(
        [str(ENTRY_POINT), "estimate", "--model", str(lightning_path), *[str(image)] * 200],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not inherited SIG_IGN
    )
    time.sleep(moment)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    if (proc.returncode, stderr) != (EX_INTERRUPTED, "edge-pose: interrupted\n"):
        assert interrupted_before_the_handler(stderr), (proc.returncode, stderr)


def test_the_start_up_window_is_judged_by_where_the_traceback_was() -> None:
    """The judge above is strict: a traceback from code after the handler fails it."""
    script = ENTRY_POINT
    early = (
        "Traceback (most recent call last):\n"
        f'  File "{script}", line 5, in <module>\n    from edge_pose.cli import main\n'
        f'  File "{CLI_SOURCE}", line {HANDLER_LINE - 1}, in <module>\n'
        "KeyboardInterrupt\n"
    )
    assert interrupted_before_the_handler(early)
    late = early.replace(f"line {HANDLER_LINE - 1},", f"line {HANDLER_LINE + 3},")
    assert not interrupted_before_the_handler(late)
    elsewhere = early.replace(str(CLI_SOURCE), str(CLI_SOURCE.parent / "estimate.py"))
    assert not interrupted_before_the_handler(elsewhere)
    assert not interrupted_before_the_handler("edge-pose: error: something else\n")


def test_ctrl_c_inside_an_extension_import_is_an_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pybind11 reports Ctrl-C during an extension's initialisation as ``ImportError:
    initialization failed`` caused by KeyboardInterrupt. That is an interrupt, not "no TFLite
    runtime found" (the 0.2 s case above once hit exactly this window)."""
    from edge_pose.inference import runtime

    (tmp_path / "interrupted_runtime.py").write_text(
        "try:\n    raise KeyboardInterrupt\n"
        "except KeyboardInterrupt as e:\n    raise ImportError('initialization failed') from e\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(runtime.RUNTIMES, "interrupted-runtime", "interrupted_runtime")
    runtime.resolve_runtime.cache_clear()
    try:
        with pytest.raises(KeyboardInterrupt):
            runtime.resolve_runtime("interrupted-runtime")
        (tmp_path / "interrupted_runtime.py").write_text("raise ImportError('not built here')\n")
        sys.modules.pop("interrupted_runtime", None)
        with pytest.raises(runtime.EdgePoseError, match="is not installed"):
            runtime.resolve_runtime("interrupted-runtime")
    finally:
        runtime.resolve_runtime.cache_clear()
