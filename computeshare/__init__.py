"""ComputeShare: Python tooling shared by the scripts, the tests and the provider agent."""

__version__ = "0.1.0"
