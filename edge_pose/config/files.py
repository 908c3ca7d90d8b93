"""The file-check phase: what a valid config names on this machine, checked before it is needed.

Values are the schema's business; whether the files and names they point at exist here is this
module's: the password file (read only by :func:`read_password`, so a password cannot leak through
repr, logs or errors), the TLS files, the trained classifier, the model in the installed catalog,
the camera's file or device. `validate`, `config set` and a reload ask first
(:func:`file_problems`, errors), and say what `run` would refuse on this machine
(:func:`run_warnings`, warnings: a config may be prepared on another machine than the device).

The model name is checked here too (:func:`model_name_problem`): load_config asks once the values
are valid, so every command refuses an unknown name alike. This is the only module of the config
package that looks at the model catalog (``edge_pose.inference.models``), and only when asked:
the schema knows nothing of it, and importing the config loads no part of inference.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

from edge_pose.camera.source import FileSource, parse_source
from edge_pose.config.messages import problem_line
from edge_pose.config.schema import (
    LABELS_FILE,
    ClassifierConfig,
    Config,
    HttpConfig,
    ModelConfig,
    MqttConfig,
)
from edge_pose.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

MODEL_NAME_KEY = "model.name"


def _password_path(password_file: str) -> Path:
    """Where a ``password_file`` is: a relative name in ``$CREDENTIALS_DIRECTORY`` when it is
    there (a systemd credential), else the path as given."""
    path = Path(password_file).expanduser()
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and creds and (Path(creds) / path).is_file():
        return Path(creds) / path
    return path


def read_password(mqtt: MqttConfig) -> str | None:
    """The MQTT password from ``mqtt.password_file`` (None if unset): :func:`read_secret`."""
    return read_secret("mqtt.password_file", mqtt.password_file)


def read_http_password(http: HttpConfig) -> str | None:
    """The web view's password from ``http.password_file`` (None if unset)."""
    return read_secret("http.password_file", http.password_file)


def read_secret(key: str, password_file: str) -> str | None:
    """A password from the file ``password_file`` names (None if it is ""), trailing newline
    removed; ``key`` is the config key, for the messages.

    A relative name is looked up in ``$CREDENTIALS_DIRECTORY`` first, so systemd's
    ``LoadCredential=mqtt-password:/etc/edge-pose/mqtt-password`` works with
    ``password_file = "mqtt-password"``. Errors name the file, never its content.
    """
    if not password_file:
        return None
    path = _password_path(password_file)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    where = f"{key} = {password_file!r}: password file {path}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{where} not found"]) from None
    except PermissionError:
        raise ConfigError(
            [
                f"{where}: permission denied (the service user must be able to read "
                "it; or pass it as a systemd credential)"
            ]
        ) from None
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read it: {exc.strerror}"]) from None
    try:
        password = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: not UTF-8 text"]) from None
    if not password:
        raise ConfigError([f"{where} is empty"])
    if not creds or not path.is_relative_to(creds):
        try:
            if path.stat().st_mode & 0o004:
                log.warning("password file %s is readable by every user: chmod 600 it", path)
        except OSError:
            pass
    return password


FILE_HINT = " (correct the path, or create the file first)"


def file_problems(cfg: Config) -> list[str]:
    """Files the config names that are not there: what `validate` and `config set` check
    beyond the values, so a mistyped path is caught before the service needs the file."""
    return (
        mqtt_file_problems(cfg.mqtt)
        + http_file_problems(cfg.http)
        + classifier_file_problems(cfg.classifier)
    )


def run_warnings(cfg: Config) -> list[str]:
    """What `run` would refuse on this machine although the config itself is valid: a camera
    file or device that is not here, a relative camera path, a model that is not installed.

    Warnings, not errors: `validate` and `config set` may run on another machine than the
    device (a config prepared on a laptop), and the messages are the ones `run` gives."""
    return _camera_warnings(cfg.camera.source) + _model_warnings(cfg.model)


def _camera_warnings(source: str) -> list[str]:
    where = f"camera.source = {source!r}"
    parsed = parse_source(source)  # a valid config's source: within the grammar
    if isinstance(parsed, FileSource):
        return [f"{where}: {problem}" for problem in _footage_problems(parsed)]
    node = parsed.device_node  # a live camera: its device node, when it is opened by one
    if node is None or os.path.exists(node):
        return []
    return [f"{where}: no {node} on this machine"]


def _footage_problems(footage: FileSource) -> list[str]:
    path = os.path.expanduser(footage.path)
    if not os.path.isabs(path):
        return [
            "a relative path: the service resolves it from its working directory "
            "(/), not from here: write the path in full"
        ]
    if footage.is_glob:
        return [] if glob.glob(footage.path) else ["the pattern matches no files"]
    if not os.path.exists(path):  # a folder this user may not search is the service's business
        return [f"camera source not found: {path} (give a video, image, folder or glob)"]
    return []


def model_name_problem(name: str) -> str | None:
    """Why ``model.name`` = ``name`` names no model (None: a catalog name or a .tflite path). An
    unknown name would otherwise fail only when the model loads; load_config asks, so every
    command refuses it alike. Without a manifest the model loader reports that instead."""
    if name.endswith(".tflite"):
        return None
    from edge_pose.inference.models import catalog  # lazy: config stays cheap to import

    try:
        names = sorted(catalog())
    except ModelError:
        return None
    if name in names:
        return None
    return problem_line(
        MODEL_NAME_KEY,
        name,
        f"must be a catalog model ({', '.join(names)}) or a path to a .tflite file",
    )


def _model_warnings(model: ModelConfig) -> list[str]:
    from edge_pose.inference.models import default_model_dir, resolve_model

    try:
        resolve_model(model.name, default_model_dir(model.dir))
    except ModelError as exc:
        return [f"model.name = {model.name!r}: {exc}"]
    except OSError:  # a folder this user may not search: the service may, nothing to tell
        pass
    return []


def classifier_file_problems(classifier: ClassifierConfig) -> list[str]:
    """The trained classifier file (and a TFLite model's labels) when one is configured."""
    if classifier.type not in ("knn", "tflite"):
        return []
    problems = []
    path = Path(classifier.path).expanduser()
    if not path.is_file():
        problems.append(f"classifier.path = {classifier.path!r}: no such file{FILE_HINT}")
    if classifier.type == "tflite":
        labels = Path(classifier.labels).expanduser() if classifier.labels else None
        if labels is not None and not labels.is_file():
            problems.append(f"classifier.labels = {classifier.labels!r}: no such file{FILE_HINT}")
        elif labels is None and path.is_file() and not (path.parent / LABELS_FILE).is_file():
            problems.append(
                f"classifier.labels = '': no labels.txt beside {path} (set classifier.labels)"
            )
    return problems


def mqtt_file_problems(mqtt: MqttConfig) -> list[str]:
    """The files ``[mqtt]`` names that are not there, one line each (empty: all present).

    The service finds the same when it starts and stops with exit 78; `validate` and
    `config set` ask first, so a mistyped path is caught before it is installed. A relative
    ``password_file`` is looked up as the service looks it up (``$CREDENTIALS_DIRECTORY``, then
    the working directory); when it is in neither it is taken for a systemd credential name,
    which only the service can resolve, and left to the service.
    """
    if not mqtt.enabled:
        return []
    problems = tls_file_problems(mqtt)
    return problems + _password_file_problems("mqtt.password_file", mqtt.password_file)


def http_file_problems(http: HttpConfig) -> list[str]:
    """The files ``[http]`` names that are not there or do not load: the password file and
    the HTTPS certificate and key (the server would refuse to start with the same words)."""
    if not http.enabled:
        return []
    problems = [
        f"http.{key} = {value!r}: no such file{FILE_HINT}"
        for key in ("certfile", "keyfile")
        if (value := getattr(http, key)) and not os.path.isfile(value)
    ]
    if http.certfile and not problems:
        import ssl

        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                http.certfile, http.keyfile
            )
        except (OSError, ValueError) as exc:
            problems.append(
                f"http.certfile = {http.certfile!r}, http.keyfile = {http.keyfile!r}: not a "
                f"server certificate and its private key in PEM format ({exc})"
            )
    return problems + _password_file_problems("http.password_file", http.password_file)


def _password_file_problems(key: str, password_file: str) -> list[str]:
    """A password file that is not there, empty or not UTF-8, found where the service looks.

    A relative name is looked up as the service looks it up (``$CREDENTIALS_DIRECTORY``, then
    the working directory); when it is in neither it is taken for a systemd credential name,
    which only the service can resolve, and left to the service.
    """
    if not password_file:
        return []
    path = _password_path(password_file)  # found where the service looks (credentials first)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    relative_credential = not path.is_absolute() and bool(creds)
    if path.is_file():
        if os.access(path, os.R_OK):
            # Empty or not UTF-8, as the service would find it. A file this user may not
            # read (root:edge-pose 0640, checked by someone else) is the service's to read.
            try:
                read_secret(key, password_file)
            except ConfigError as exc:
                return exc.problems
        return []
    if path.is_absolute() or relative_credential:
        where = f" nor a credential in {creds}" if relative_credential else ""
        return [f"{key} = {password_file!r}: no such file{where}{FILE_HINT}"]
    return []


def tls_file_problems(mqtt: MqttConfig) -> list[str]:
    """The TLS files (with ``mqtt.tls``) that are missing or do not load as PEM, each named:
    the TLS library itself says only "PEM lib"."""
    if not mqtt.tls:
        return []
    problems = [
        f"mqtt.{key} = {value!r}: no such file{FILE_HINT}"
        for key in ("ca_file", "certfile", "keyfile")
        if (value := getattr(mqtt, key)) and not os.path.isfile(value)
    ]
    return problems or _tls_load_problems(mqtt)


def _tls_load_problems(mqtt: MqttConfig) -> list[str]:
    import ssl

    problems = []
    if mqtt.ca_file:
        try:
            ssl.create_default_context(cafile=mqtt.ca_file)
        except (OSError, ValueError) as exc:
            problems.append(
                f"mqtt.ca_file = {mqtt.ca_file!r}: not a CA certificate in PEM format ({exc})"
            )
    if mqtt.certfile:
        try:
            ssl.create_default_context().load_cert_chain(mqtt.certfile, mqtt.keyfile or None)
        except (OSError, ValueError) as exc:
            problems.append(
                f"mqtt.certfile = {mqtt.certfile!r}, mqtt.keyfile = {mqtt.keyfile!r}: not a "
                f"client certificate and its private key in PEM format ({exc})"
            )
    return problems
