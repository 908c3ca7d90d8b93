"""Running edge-pose as a long-lived service: the run loop, signals and logging."""
