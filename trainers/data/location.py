"""A location's bytes: a local file, or an object in s3:// / gs:// (and any URI pyarrow.fs opens,
as Ray Data does), gunzipped when its name ends in .gz. What the data side and the test items
read through.
"""

from __future__ import annotations

import gzip
from pathlib import Path


def is_remote(location: str) -> bool:
    """A URI (s3://, gs://, file://, ...): opened through pyarrow.fs, like Ray Data does."""
    return "://" in location


def open_bytes(location: str) -> bytes:
    if is_remote(location):
        from pyarrow import fs  # lazy: light command (dry run: no pyarrow)

        filesystem, path = fs.FileSystem.from_uri(location)
        with filesystem.open_input_stream(path) as stream:
            data = stream.read()
    else:
        data = Path(location).read_bytes()
    return gzip.decompress(data) if location.endswith(".gz") else data
