"""Hospital discharge-planning and utilization-review engine."""

__version__ = "0.1.0"
