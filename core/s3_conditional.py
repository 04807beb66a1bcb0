"""Conditional writes on S3 (and S3-compatible stores: MinIO, R2, moto), which pyarrow's S3
filesystem lacks: create-if-absent (`If-None-Match: *`) and replace-if-unchanged
(`If-Match: <ETag>`). `core.storage.Lease` builds its atomic claim and takeover on these.
The endpoint comes from `AWS_ENDPOINT_URL` as for pyarrow; credentials from the usual AWS chain.
    AWS_ENDPOINT_URL=http://127.0.0.1:5000 python -c "from core.s3_conditional import client; print(client())"
"""

from __future__ import annotations

import functools
import os

# Status codes of a failed precondition: 412, and 409 when a concurrent conditional write to
# the same key is still in flight (S3 then asks the loser to retry; for a lock it simply lost).
LOST = {"PreconditionFailed", "ConditionalRequestConflict"}


@functools.cache
def _client(pid: int, endpoint: str | None):
    import boto3  # lazy: light command (no boto3)

    return boto3.client("s3", endpoint_url=endpoint or None)


def client():
    """One boto3 client per process and endpoint (clients are not fork-safe)."""
    return _client(os.getpid(), os.environ.get("AWS_ENDPOINT_URL"))


def _lost(error) -> bool:
    return error.response.get("Error", {}).get("Code") in LOST


def put_if_absent(bucket: str, key: str, data: bytes) -> str | None:
    """Create the object; its ETag, or None when it already exists."""
    from botocore.exceptions import ClientError  # lazy: light command (no boto3)

    try:
        return client().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")["ETag"]
    except ClientError as e:
        if _lost(e):
            return None
        raise


def put_if_match(bucket: str, key: str, data: bytes, etag: str) -> str | None:
    """Replace the object if it still has `etag`; the new ETag, or None when it changed (or
    was deleted) since."""
    from botocore.exceptions import ClientError  # lazy: light command (no boto3)

    try:
        return client().put_object(Bucket=bucket, Key=key, Body=data, IfMatch=etag)["ETag"]
    except ClientError as e:
        if _lost(e) or e.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise


def get(bucket: str, key: str) -> tuple[bytes, str]:
    """The object's bytes and ETag; FileNotFoundError when absent."""
    from botocore.exceptions import ClientError  # lazy: light command (no boto3)

    try:
        out = client().get_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            raise FileNotFoundError(f"s3://{bucket}/{key}") from e
        raise
    return out["Body"].read(), out["ETag"]
