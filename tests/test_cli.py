"""The command line's one pattern: every subcommand is a module of edge_pose.commands with
``add_parser`` and ``run``, listed once in cli.py, and building the parser stays cheap."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_pose import cli, doctor
from edge_pose.inference import edgetpu

COMMANDS_DIR = Path(cli.__file__).parent / "commands"


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_every_subcommand_is_one_module_listed_once() -> None:
    modules = sorted(p.stem for p in COMMANDS_DIR.glob("*.py") if p.stem != "__init__")
    assert sorted(cli.COMMANDS) == modules  # no module left out of the list, none listed twice
    assert subcommands(cli.build_parser()) == list(cli.COMMANDS)  # each registers its own name
    for name in cli.COMMANDS:
        command = cli.command(name)
        assert callable(command.add_parser) and callable(command.run), name


def test_help_lists_the_subcommands_in_order_and_each_has_its_own() -> None:
    result = subprocess.run([sys.executable, "-m", "edge_pose.cli", "--help"],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")]
    assert [name for name in listed if name in cli.COMMANDS] == list(cli.COMMANDS)
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit) as done:
            cli.build_parser().parse_args([name, "--help"])
        assert done.value.code == 0, name


def test_building_the_parser_imports_no_feature() -> None:
    """Every command's module is imported for every command (`edge-pose status` too): the
    features (config, OpenCV, the model runtime, paho) are imported only when one runs."""
    code = textwrap.dedent(
        """\
        import sys
        from edge_pose.cli import build_parser
        build_parser()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in
                       ("pydantic", "cv2", "numpy", "paho", "ai_edge_litert", "tflite_runtime",
                        "tensorflow") or m.startswith("edge_pose.config"))
        print(heavy)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_a_usage_error_names_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["doctor", "--timeout", "0"])
    assert done.value.code == 2
    assert capsys.readouterr().err == (
        "edge-pose doctor: error: argument --timeout: must be from 0.1 to 300 seconds, not 0 "
        "(see edge-pose doctor --help)\n"
    )


def test_an_unknown_argument_is_echoed_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    """What argparse did not recognise is shown as typed, control characters escaped: an
    argument cannot clear the terminal or forge a line."""
    with pytest.raises(SystemExit) as done:
        cli.main(["validate", "\x1b[2J\nedge-pose: ok"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "edge-pose: error: unrecognized arguments: \\x1b[2J\\nedge-pose: ok "
        "(see edge-pose --help)\n"
    )


def test_a_doctor_check_that_crashes_is_reported_under_its_name(tmp_path: Path) -> None:
    """An inconsistent context (no config and no problem saying why) makes the config check
    itself fail: it is one failed line named `config`, and every other check still runs."""
    ctx = doctor.Context(
        None, None, [], 1.0, edgetpu.Identity.current(), "", edgetpu.Settings(sysfs_root=tmp_path)
    )
    checks = doctor.run_context(ctx)
    config = next(c for c in checks if c.name == "config")
    assert config.status == "fail"
    assert config.summary.startswith("the check itself failed: IndexError")
    assert config.fix == "report this as a bug in edge-pose"
    names = [c.name for c in checks]
    assert names[:5] == ["python", "os", "runtime", "numpy", "config"]
    assert names[-4:] == ["mqtt", "web", "system", "service"]


def test_ctrl_c_inside_an_import_is_one_line_and_130(tmp_path: Path) -> None:
    """A Ctrl-C while a module is imported ends at once with the one line and 130 (raised
    there, numpy would turn it into an ImportError and pydantic into a RuntimeError); outside an
    import it is the KeyboardInterrupt main() catches."""
    (tmp_path / "interrupted_import.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\n"
    )
    inside = (
        "import signal, sys\nfrom edge_pose import cli\n"
        "signal.signal(signal.SIGINT, cli._interrupt)\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\nimport interrupted_import\nprint('not reached')\n"
    )
    outside = (
        "import os, signal, time\nfrom edge_pose import cli\n"
        "signal.signal(signal.SIGINT, cli._interrupt)\n"
        "try:\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(5)\n"
        "except KeyboardInterrupt:\n    print('caught')\n"
    )
    done = subprocess.run([sys.executable, "-c", inside], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert (done.returncode, done.stderr, done.stdout) == (130, cli.INTERRUPTED + "\n", "")
    done = subprocess.run([sys.executable, "-c", outside], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "caught\n")
