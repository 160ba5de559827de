"""Example probe types for health-adapter, installed through the health_adapter.probes entry points."""
