"""The example image's program: prove the venv works."""

import sys

print(f"hello from {sys.prefix}")
