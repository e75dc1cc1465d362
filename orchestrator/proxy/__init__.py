"""The caching PyPI proxy: its container as data (``spec``), its image, its lifecycle and
the probe that tells whether it serves."""
