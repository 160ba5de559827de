"""The probe API for health-adapter: subclass `Probe`, return a `Result`."""

from probes.base import Probe, Reason, Resources, Result, Status
from probes.types import Duration

__all__ = ["Duration", "Probe", "Reason", "Resources", "Result", "Status"]
