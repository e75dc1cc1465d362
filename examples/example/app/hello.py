"""The example image's program: prove the venv and its packages work."""

import sys

import requests

print(f"hello from {sys.prefix} with requests {requests.__version__}")
