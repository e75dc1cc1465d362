"""Containers wired as builds are: `orchestrate run` and `orchestrate env`."""
