"""TOML -> typed, validated configuration, one job per module:

- ``schema``: the pydantic sections and :class:`Config` (what a value may be);
- ``loading``: reading a file or pipe (bounded), CLI overrides, :func:`load_config`;
- ``messages``: a validation error as one line that says where, what and what is allowed;
- ``files``: the file-check phase (files, the model catalog, the camera) and the password.

Everything the rest of edge-pose uses is imported from here, ``edge_pose.config``; the modules
themselves are for this package and for tests that reach into one of them.
"""

from edge_pose.config.files import (
    file_problems,
    read_password,
    run_warnings,
    tls_file_problems,
)
from edge_pose.config.loading import DEFAULT_CONFIG_PATH, config_path, load_config, read_config_text
from edge_pose.config.schema import (
    LABELS_FILE,
    SECTIONS,
    CameraConfig,
    ClassifierConfig,
    Config,
    DeviceConfig,
    ModelConfig,
    MqttConfig,
    SmoothingConfig,
    StatusConfig,
    to_toml_dict,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "LABELS_FILE",
    "SECTIONS",
    "CameraConfig",
    "ClassifierConfig",
    "Config",
    "DeviceConfig",
    "ModelConfig",
    "MqttConfig",
    "SmoothingConfig",
    "StatusConfig",
    "config_path",
    "file_problems",
    "load_config",
    "read_config_text",
    "read_password",
    "run_warnings",
    "tls_file_problems",
    "to_toml_dict",
]
