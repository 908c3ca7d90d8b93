"""Everything that speaks MQTT: the device's publisher, its remote control, and the paho client
that `edge-pose watch` and `edge-pose doctor` use too.

- ``client.py``: the one client factory (protocol, TLS, login, reconnect delays) and the
  connection check of the tools that wait for the broker's answer.
- ``publisher.py``: :class:`MqttPublisher`, the daemon's connection, which never makes the
  pipeline wait; its parts that are worth reading alone: ``pacing.py`` (keypoints rate),
  ``retained.py`` (retained messages republished after a connect), ``acks.py`` (a broker that
  stopped answering).
- ``remote.py``: commands on ``<base>/set``, the retained ``state`` and periodic ``stats``.
"""

from edge_pose.mqtt.publisher import MqttPublisher

__all__ = ["MqttPublisher"]
