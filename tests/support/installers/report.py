"""Print the distributions installed in this Python environment, each checked file by file.

One line per distribution whose name starts with ``orch-`` (the test packages), sorted:
``name==version files=N bad=M``, where M counts files whose content no longer matches the
sha256 that the distribution's RECORD gives for it. Run with the environment's own python.
"""

import base64
import hashlib
import importlib.metadata
import pathlib
import sys


def checked(dist: importlib.metadata.Distribution) -> tuple[int, int]:
    files = bad = 0
    for entry in dist.files or ():
        if entry.hash is None or entry.hash.mode != "sha256":
            continue
        files += 1
        digest = hashlib.sha256(pathlib.Path(entry.locate()).read_bytes()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != entry.hash.value:
            bad += 1
    return files, bad


lines = []
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    if name.lower().startswith("orch-"):
        files, bad = checked(dist)
        lines.append(f"{name.lower()}=={dist.version} files={files} bad={bad}")
sys.stdout.write("".join(f"{line}\n" for line in sorted(lines)))
