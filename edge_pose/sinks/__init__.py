"""Where frame results go: one :class:`~edge_pose.sinks.base.Sink` per output.

The pipeline hands each frame's :class:`~edge_pose.sinks.base.FrameResult` to its sinks and
knows nothing of what they do with it: MQTT (:mod:`~edge_pose.sinks.mqtt`), the JSON lines of
``run --print`` (:mod:`~edge_pose.sinks.printer`), the annotated video of ``run --annotate``
(:mod:`~edge_pose.sinks.video`). A new output is one new module here with one ``Sink``
subclass, added to the list where the daemon assembles a session.
"""
