"""orchestrator: Docker builds that install Python packages fast, repeatably and safely."""

__version__ = "0.1.0"
