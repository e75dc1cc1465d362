"""Talking to Docker: python-on-whales calls (``client``) and terminal commands (``process``)."""
