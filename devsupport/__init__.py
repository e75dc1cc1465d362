"""Development support shared by the tests and the benchmark: never shipped, never imported
by orchestrator.

- ``wheels``: valid wheels made offline, of any size;
- ``index``: a static PEP 503 tree for a directory of distributions;
- ``upstream``: the hermetic PyPI-like server that serves such a tree (with outages on
  demand), and ``upstream_container``: that server in a container, through python-on-whales.

It lives beside ``orchestrator/`` rather than under ``tests/`` so that ``bench`` imports it
as a package of its own, not the test suite's internals. pyproject.toml keeps it out of the
distribution (``packages.find`` includes ``orchestrator*`` only); it is importable from the
repository's root, as ``tests`` and ``bench`` are.
"""
