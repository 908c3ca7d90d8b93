"""The model catalog: fetch (mirror folder, file:// and a real local HTTP server), verify, resolve.

Every test replaces the manifest URLs with a dead loopback address, so nothing here can reach the
internet; sources that should work are served from ../shared/models or a local http.server.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_unprivileged

from edge_pose.errors import ModelError
from edge_pose.inference import models

LIGHTNING = "movenet_lightning_int8"
LIGHTNING_FILE = "movenet_single_pose_lightning_ptq.tflite"
EDGETPU_FILE = "movenet_single_pose_lightning_ptq_edgetpu.tflite"
MULTIPOSE = "movenet_multipose_lightning"
THUNDER = "movenet_thunder_int8"
THUNDER_FILE = "movenet_single_pose_thunder_ptq.tflite"
DEAD = "http://127.0.0.1:1"  # nothing listens on port 1: connection refused at once


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def offline_catalog(monkeypatch: pytest.MonkeyPatch) -> dict[str, models.ModelInfo]:
    """The real manifest with its URLs pointed at a dead local port; no env from the caller."""
    for var in ("EDGE_POSE_MODEL_MIRROR", "EDGE_POSE_MODEL_DIR", "STATE_DIRECTORY"):
        monkeypatch.delenv(var, raising=False)
    entries = {
        name: dataclasses.replace(info, url=f"{DEAD}/{info.file}")
        for name, info in models.catalog().items()
    }
    monkeypatch.setattr(models, "catalog", lambda: dict(entries))
    monkeypatch.setattr(models, "_warned_unpinned", set())
    return entries


def set_url(monkeypatch: pytest.MonkeyPatch, entries: dict, name: str, url: str) -> None:
    entries[name] = dataclasses.replace(entries[name], url=url)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 (random port) serving a folder: (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def assert_clean(folder: Path, *expected: str) -> None:
    """Only the expected files: no .part file left behind."""
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert names == sorted(expected)


# --------------------------------------------------------------------------- manifest


def test_manifest_is_complete_and_pins_the_shared_lightning_models(shared_models: Path) -> None:
    real = dict(models._load_manifest(models.manifest_path()))  # a copy: the parse is cached
    assert set(real) == {
        LIGHTNING,
        "movenet_lightning_int8_edgetpu",
        THUNDER,
        "movenet_thunder_int8_edgetpu",
        MULTIPOSE,
    }
    sums = dict(
        reversed(line.split())
        for line in (shared_models / "SHA256SUMS").read_text().splitlines()
        if line.strip()
    )
    # MultiPose: built by the project from the TF Hub model (no public .tflite), CPU only.
    multi = real.pop(MULTIPOSE)
    assert multi.kind == "movenet_multi" and multi.backend == "cpu" and multi.twin == ""
    assert multi.url == "" and multi.sha256 == sums[multi.file] and multi.input_size == 256
    for info in real.values():
        assert real[info.twin].twin == info.name
        assert {info.backend, real[info.twin].backend} == {"cpu", "edgetpu"}
        assert info.url == f"https://github.com/google-coral/test_data/raw/master/{info.file}"
        assert info.license == "Apache-2.0"
        assert info.input_size == (192 if "lightning" in info.name else 256)
        if "lightning" in info.name:
            assert info.pinned and info.sha256 == sums[info.file]
        else:
            assert not info.pinned
    assert real[LIGHTNING].file == LIGHTNING_FILE and real[LIGHTNING].backend == "cpu"


def test_broken_manifest_names_the_file_and_problem(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.toml"
    bad.write_text(
        '[[model]]\nname = "x"\nfile = "a/b.tflite"\nsha256 = "abc"\ninput_size = 192\n'
        'backend = "gpu"\ntwin = "y"\nurl = ""\nlicense = ""\ndescription = ""\n'
    )
    with pytest.raises(ModelError) as err:
        models._load_manifest(bad)
    text = str(err.value)
    for needle in (str(bad), "backend 'gpu'", "sha256", "plain file name", "twin 'y'"):
        assert needle in text


# --------------------------------------------------------------------------- fetch


def test_fetch_from_mirror_folder_is_checked_atomic_and_not_repeated(
    shared_models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dest_dir = tmp_path / "models"
    path = models.fetch(LIGHTNING, dest_dir, mirror=str(shared_models), progress=False)
    assert path == dest_dir / LIGHTNING_FILE
    assert sha256(path) == sha256(shared_models / LIGHTNING_FILE)
    assert_clean(dest_dir, LIGHTNING_FILE)

    before = path.stat()
    caplog.set_level(logging.INFO, logger=models.__name__)
    # No working source at all: a second fetch must not need one.
    again = models.fetch(LIGHTNING, dest_dir, mirror=str(tmp_path / "nowhere"))
    assert again == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "already installed" in caplog.text


def test_fetch_from_env_file_url_mirror(
    shared_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_POSE_MODEL_MIRROR", shared_models.resolve().as_uri() + "/")
    path = models.fetch("movenet_lightning_int8_edgetpu", tmp_path)
    assert sha256(path) == sha256(shared_models / EDGETPU_FILE)
    assert_clean(tmp_path, EDGETPU_FILE)


def test_fetch_over_http_mirror(
    shared_models: Path, tmp_path: Path, http_root: tuple[str, Path]
) -> None:
    base, root = http_root
    shutil.copy(shared_models / LIGHTNING_FILE, root)
    dest_dir = tmp_path / "models"
    path = models.fetch(LIGHTNING, dest_dir, mirror=base + "/", progress=True)
    assert sha256(path) == sha256(shared_models / LIGHTNING_FILE)
    assert_clean(dest_dir, LIGHTNING_FILE)


def test_mirror_without_the_file_falls_through_to_manifest_url(
    shared_models: Path,
    tmp_path: Path,
    http_root: tuple[str, Path],
    offline_catalog: dict,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base, root = http_root
    upstream = root / "upstream"
    upstream.mkdir()
    shutil.copy(shared_models / LIGHTNING_FILE, upstream)
    set_url(monkeypatch, offline_catalog, LIGHTNING, f"{base}/upstream/{LIGHTNING_FILE}")
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    dest_dir = tmp_path / "models"

    path = models.fetch(LIGHTNING, dest_dir, mirror=str(empty_mirror), progress=False)
    assert sha256(path) == offline_catalog[LIGHTNING].sha256
    assert_clean(dest_dir, LIGHTNING_FILE)
    assert str(empty_mirror / LIGHTNING_FILE) in caplog.text  # the skipped source is reported

    # An HTTP mirror answering 404 falls through the same way.
    path.unlink()
    models.fetch(LIGHTNING, dest_dir, mirror=f"{base}/no-such-folder", progress=False)
    assert_clean(dest_dir, LIGHTNING_FILE)


def test_corrupted_download_is_rejected_and_nothing_is_left(
    shared_models: Path,
    tmp_path: Path,
    http_root: tuple[str, Path],
    offline_catalog: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, root = http_root
    data = bytearray((shared_models / LIGHTNING_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / LIGHTNING_FILE).write_bytes(bytes(data))
    url = f"{base}/{LIGHTNING_FILE}"
    set_url(monkeypatch, offline_catalog, LIGHTNING, url)
    dest_dir = tmp_path / "models"

    with pytest.raises(ModelError) as err:
        models.fetch(LIGHTNING, dest_dir, mirror="", progress=False)
    text = str(err.value)
    assert url in text
    assert offline_catalog[LIGHTNING].sha256 in text
    assert hashlib.sha256(data).hexdigest() in text
    assert_clean(dest_dir)


def test_unreachable_sources_are_all_named(tmp_path: Path) -> None:
    dest_dir = tmp_path / "models"
    with pytest.raises(ModelError) as err:
        models.fetch(LIGHTNING, dest_dir, mirror="http://127.0.0.1:1/mirror", progress=False)
    text = str(err.value)
    assert f"http://127.0.0.1:1/mirror/{LIGHTNING_FILE}" in text
    assert f"{DEAD}/{LIGHTNING_FILE}" in text
    assert "refused" in text.lower()
    assert_clean(dest_dir)


def test_a_corrupt_installed_file_is_replaced(shared_models: Path, tmp_path: Path) -> None:
    (tmp_path / LIGHTNING_FILE).write_bytes(b"truncated")
    path = models.fetch(LIGHTNING, tmp_path, mirror=str(shared_models), progress=False)
    assert sha256(path) == sha256(shared_models / LIGHTNING_FILE)
    assert_clean(tmp_path, LIGHTNING_FILE)


def test_unknown_model_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        models.fetch("movenet_multipose", tmp_path, mirror="", progress=False)
    assert "movenet_multipose" in str(err.value)
    assert LIGHTNING in str(err.value) and THUNDER in str(err.value)


def test_unpinned_model_records_its_checksum_and_warns_once(
    shared_models: Path,
    tmp_path: Path,
    http_root: tuple[str, Path],
    offline_catalog: dict,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Thunder is not in shared/: serve real model bytes under its name (fetch does not parse them).
    base, root = http_root
    shutil.copy(shared_models / LIGHTNING_FILE, root / THUNDER_FILE)
    set_url(monkeypatch, offline_catalog, THUNDER, f"{base}/{THUNDER_FILE}")
    dest_dir = tmp_path / "models"
    expected = sha256(root / THUNDER_FILE)

    caplog.set_level(logging.WARNING, logger=models.__name__)
    path = models.fetch(THUNDER, dest_dir, mirror="", progress=False)
    assert sha256(path) == expected
    assert_clean(dest_dir, THUNDER_FILE, THUNDER_FILE + ".sha256")
    assert (dest_dir / (THUNDER_FILE + ".sha256")).read_text().split()[0] == expected
    models.fetch(THUNDER, dest_dir, mirror="", progress=False)
    warnings = [r for r in caplog.records if "not pinned" in r.getMessage()]
    assert len(warnings) == 1 and expected in warnings[0].getMessage()

    [result] = models.verify(dest_dir, [THUNDER])
    assert (result.status, result.sha256) == ("unpinned", expected)

    path.write_bytes(b"changed after fetch")
    [result] = models.verify(dest_dir, [THUNDER])
    assert result.status == "mismatch" and expected in result.detail


# --------------------------------------------------------------------------- hostile model folder

# What a user who owns the model folder can leave at a name fetch writes: root running fetch
# must neither write through it nor truncate what it points at.
PLANT_KINDS = ("symlink", "dangling-symlink", "hardlink", "symlink-to-dir", "fifo", "regular")


def plant(kind: str, at: Path, outside: Path) -> Path:
    """Put a ``kind`` at ``at`` aimed at a fresh victim under ``outside``; return the victim."""
    victim = outside / f"victim-{at.name}"
    if kind == "symlink-to-dir":
        victim.mkdir()
        (victim / "keep").write_bytes(b"keep")
    elif kind != "dangling-symlink":
        victim.write_bytes(b"root-only secret\n")
    if kind in ("symlink", "dangling-symlink", "symlink-to-dir"):
        at.symlink_to(victim)
    elif kind == "hardlink":
        os.link(victim, at)
    elif kind == "fifo":
        os.mkfifo(at)
    else:
        at.write_bytes(b"left behind by someone else\n")
    return victim


def snapshot(victim: Path) -> object:
    """What must not change: the victim's bytes (a folder: its listing and files), or absence."""
    if victim.is_dir():
        return {p.name: p.read_bytes() for p in victim.iterdir()}
    return victim.read_bytes() if victim.exists() else None


@pytest.mark.parametrize("kind", PLANT_KINDS)
def test_planted_files_in_the_model_folder_are_never_written_through(
    kind: str,
    shared_models: Path,
    tmp_path: Path,
    http_root: tuple[str, Path],
    offline_catalog: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Unpinned Thunder (real bytes under its name) writes both the model and its .sha256 record.
    base, root = http_root
    shutil.copy(shared_models / LIGHTNING_FILE, root / THUNDER_FILE)
    set_url(monkeypatch, offline_catalog, THUNDER, f"{base}/{THUNDER_FILE}")
    expected = sha256(root / THUNDER_FILE)
    dest_dir, outside = tmp_path / "models", tmp_path / "outside"
    dest_dir.mkdir()
    outside.mkdir()
    names = (THUNDER_FILE + ".part", THUNDER_FILE + ".sha256", THUNDER_FILE + ".sha256.part")
    victims = {name: plant(kind, dest_dir / name, outside) for name in names}
    before = {name: snapshot(victim) for name, victim in victims.items()}

    path = models.fetch(THUNDER, dest_dir, mirror="", progress=False)

    assert {name: snapshot(victim) for name, victim in victims.items()} == before
    assert not path.is_symlink() and sha256(path) == expected
    record = dest_dir / (THUNDER_FILE + ".sha256")
    assert not record.is_symlink() and record.read_text() == f"{expected}  {THUNDER_FILE}\n"
    leftovers = {p.name for p in dest_dir.iterdir()} - set(names) - {THUNDER_FILE}
    assert leftovers == set()  # no temporary file of ours left behind


@pytest.mark.parametrize("kind", ("symlink", "hardlink", "regular"))
def test_a_planted_model_file_is_replaced_not_written_through(
    kind: str, shared_models: Path, tmp_path: Path
) -> None:
    dest_dir, outside = tmp_path / "models", tmp_path / "outside"
    dest_dir.mkdir()
    outside.mkdir()
    victim = plant(kind, dest_dir / LIGHTNING_FILE, outside)
    before = snapshot(victim)
    path = models.fetch(LIGHTNING, dest_dir, mirror=str(shared_models), progress=False)
    assert snapshot(victim) == before
    assert not path.is_symlink() and sha256(path) == sha256(shared_models / LIGHTNING_FILE)
    assert_clean(dest_dir, LIGHTNING_FILE)


def test_a_folder_where_the_model_goes_is_one_error_line(
    shared_models: Path, tmp_path: Path
) -> None:
    (tmp_path / LIGHTNING_FILE).mkdir()
    with pytest.raises(ModelError) as err:
        models.fetch(LIGHTNING, tmp_path, mirror=str(shared_models), progress=False)
    assert str(err.value).startswith(f"cannot install {tmp_path / LIGHTNING_FILE}: ")
    assert "\n" not in str(err.value)
    assert_clean(tmp_path, LIGHTNING_FILE)


# --------------------------------------------------------------------------- offline


OFFLINE_MIRRORS = {
    "unset": None,
    "missing-folder": "{tmp}/no-such-folder",
    "empty-folder": "{tmp}/empty",
    "file-url": "file://{tmp}/empty",
    "dead-http": "http://127.0.0.1:1/models",
}


@pytest.mark.parametrize("mirror", OFFLINE_MIRRORS)
def test_offline_fetch_is_one_line_naming_the_mirror_and_the_offline_package(
    mirror: str, tmp_path: Path
) -> None:
    """`edge-pose models fetch` with no network (every proxy a closed port) and no usable
    mirror: the error says how to install without network, in one line."""
    (tmp_path / "empty").mkdir()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("EDGE_POSE_MODEL_MIRROR", None)
    env.update(http_proxy=DEAD, https_proxy=DEAD, HTTP_PROXY=DEAD, HTTPS_PROXY=DEAD)
    if OFFLINE_MIRRORS[mirror] is not None:
        env["EDGE_POSE_MODEL_MIRROR"] = OFFLINE_MIRRORS[mirror].format(tmp=tmp_path)
    dest_dir = tmp_path / "models"
    command = [sys.executable, "-m", "edge_pose.cli", "models", "fetch", LIGHTNING]
    result = subprocess.run(
        [*command, "--dir", str(dest_dir)], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"edge-pose: error: cannot fetch model '{LIGHTNING}' into {dest_dir}: ")
    assert "EDGE_POSE_MODEL_MIRROR" in line and LIGHTNING_FILE in line
    assert "make deb OFFLINE=1" in line and "docs/packaging.md" in line
    assert "github.com" in line  # the manifest URL was tried too, and is named
    assert_clean(dest_dir)


# --------------------------------------------------------------------------- verify


def test_verify_reports_ok_missing_and_mismatch(shared_models: Path, tmp_path: Path) -> None:
    models.fetch(LIGHTNING, tmp_path, mirror=str(shared_models), progress=False)
    corrupt = bytearray((shared_models / EDGETPU_FILE).read_bytes())
    corrupt[-1] ^= 0x01
    (tmp_path / EDGETPU_FILE).write_bytes(bytes(corrupt))

    results = {r.name: r for r in models.verify(tmp_path)}
    assert set(results) == set(models.catalog())
    assert results[LIGHTNING].status == "ok"
    assert results[LIGHTNING].path == tmp_path / LIGHTNING_FILE
    edgetpu = results["movenet_lightning_int8_edgetpu"]
    assert edgetpu.status == "mismatch"
    assert models.catalog()["movenet_lightning_int8_edgetpu"].sha256 in edgetpu.detail
    assert hashlib.sha256(corrupt).hexdigest() in edgetpu.detail
    assert results[THUNDER].status == "missing"
    assert f"edge-pose models fetch {THUNDER}" in results[THUNDER].detail

    assert [r.name for r in models.verify(tmp_path, [LIGHTNING])] == [LIGHTNING]
    with pytest.raises(ModelError, match="known models"):
        models.verify(tmp_path, ["nope"])


# --------------------------------------------------------------------------- resolve


def test_resolve_model_by_name_and_path(shared_models: Path, tmp_path: Path) -> None:
    models.fetch(LIGHTNING, tmp_path, mirror=str(shared_models), progress=False)
    path, info = models.resolve_model(LIGHTNING, tmp_path)
    assert path == tmp_path / LIGHTNING_FILE and info is not None and info.input_size == 192

    path, info = models.resolve_model(str(shared_models / EDGETPU_FILE), tmp_path)
    assert path == (shared_models / EDGETPU_FILE).absolute()
    assert info is not None and info.backend == "edgetpu"

    own = tmp_path / "my_model.tflite"
    shutil.copy(shared_models / LIGHTNING_FILE, own)
    assert models.resolve_model(str(own), tmp_path) == (own, None)


def test_resolve_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        models.resolve_model(LIGHTNING, tmp_path)
    # tmp_path is not where `models fetch` installs on its own: the hint names the folder.
    assert str(err.value) == (
        f"model '{LIGHTNING}' is not installed in {tmp_path}: "
        f"run `edge-pose models fetch {LIGHTNING} --dir {tmp_path}`"
    )
    assert models.fetch_command(LIGHTNING, models.default_model_dir()) == (
        f"edge-pose models fetch {LIGHTNING}"
    )
    missing = tmp_path / "gone.tflite"
    with pytest.raises(ModelError, match="does not exist") as err:
        models.resolve_model(str(missing), tmp_path)
    assert str(missing) in str(err.value)
    with pytest.raises(ModelError, match="not a file"):
        models.resolve_model(str(tmp_path) + "/", tmp_path)
    with pytest.raises(ModelError, match="known models") as err:
        models.resolve_model("movenet_lightnin", tmp_path)
    assert LIGHTNING in str(err.value)


def test_unreadable_model_file(shared_models: Path, world_dir: Path) -> None:
    locked = world_dir / LIGHTNING_FILE
    shutil.copy(shared_models / LIGHTNING_FILE, locked)
    locked.chmod(0)
    image = world_dir / "blank.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    result = run_unprivileged("estimate", str(image), "--model", str(locked))
    assert result.returncode == 1
    assert result.stderr == (
        f"edge-pose: error: model file {locked} is not readable (check its permissions)\n"
    )


# --------------------------------------------------------------------------- default_model_dir


def test_default_model_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "var-lib" / "models"
    source = tmp_path / "checkout" / "models"
    monkeypatch.setattr(models, "SYSTEM_MODEL_DIR", system)
    monkeypatch.setattr(models, "SOURCE_MODELS_DIR", source)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)

    # Nothing set, no system folder, not a source checkout: the user's data folder.
    assert models.default_model_dir() == tmp_path / "home/.local/share/edge-pose/models"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert models.default_model_dir() == tmp_path / "home/.local/share/edge-pose/models"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert models.default_model_dir() == tmp_path / "xdg/edge-pose/models"

    source.mkdir(parents=True)
    (source / "manifest.toml").write_text("")
    assert models.default_model_dir() == source
    system.mkdir(parents=True)
    assert models.default_model_dir() == system
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/state:{tmp_path}/other")
    assert models.default_model_dir() == tmp_path / "state/models"
    monkeypatch.setenv("EDGE_POSE_MODEL_DIR", str(tmp_path / "env"))
    assert models.default_model_dir() == tmp_path / "env"
    assert models.default_model_dir("") == tmp_path / "env"
    assert models.default_model_dir(str(tmp_path / "config")) == tmp_path / "config"
    assert models.default_model_dir("~/m") == tmp_path / "home/m"
