"""TOML -> typed, validated configuration, one job per module:

- ``schema``: the pydantic sections and :class:`Config` (what a value may be);
- ``loading``: reading a file or pipe (bounded), CLI overrides, :func:`load_config`;
- ``messages``: a validation error as one line that says where, what and what is allowed;
- ``files``: the file-check phase (files, the model catalog, the camera) and the password.

Everything the rest of edge-pose uses is imported from here, ``edge_pose.config``, as it was
when the package was one module (the limits and helpers included); the modules themselves are for
this package and for tests that reach into one of them. Where status.json lives is not config:
:mod:`edge_pose.service.status_dir` answers that, for the writer and every reader.
"""

from edge_pose.config.files import (
    FILE_HINT,
    classifier_file_problems,
    file_problems,
    mqtt_file_problems,
    read_http_password,
    read_password,
    run_warnings,
    tls_file_problems,
)
from edge_pose.config.loading import (
    CLI_NOTE,
    DEFAULT_CONFIG_PATH,
    MAX_CONFIG_BYTES,
    MAX_NESTING,
    PIPE_WAIT_S,
    config_path,
    load_config,
    read_config_text,
)
from edge_pose.config.schema import (
    LABELS_FILE,
    MAX_TEXT,
    SECTIONS,
    CameraConfig,
    ClassifierConfig,
    Config,
    DeviceConfig,
    HttpConfig,
    ModelConfig,
    MqttConfig,
    SmoothingConfig,
    StatusConfig,
    TrackingConfig,
    to_toml_dict,
)

__all__ = [
    "CLI_NOTE",
    "DEFAULT_CONFIG_PATH",
    "FILE_HINT",
    "LABELS_FILE",
    "MAX_CONFIG_BYTES",
    "MAX_NESTING",
    "MAX_TEXT",
    "PIPE_WAIT_S",
    "SECTIONS",
    "CameraConfig",
    "ClassifierConfig",
    "Config",
    "DeviceConfig",
    "HttpConfig",
    "ModelConfig",
    "MqttConfig",
    "SmoothingConfig",
    "StatusConfig",
    "TrackingConfig",
    "classifier_file_problems",
    "config_path",
    "file_problems",
    "load_config",
    "mqtt_file_problems",
    "read_config_text",
    "read_http_password",
    "read_password",
    "run_warnings",
    "tls_file_problems",
    "to_toml_dict",
]
