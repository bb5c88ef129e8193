"""An object store sink: the file put into an S3-compatible bucket with boto3,
at <prefix><connection>/<trace id>/<name>, with the metadata sha256, trace-id,
connection and data-type.

Once per trace id: a HEAD first, and an object already there with the same
sha256 is taken as delivered (a retry after a put whose answer was lost does
not upload again). Large files go in parts (multipart upload, streamed from
the file). With an endpoint (an S3-compatible server), path-style addressing.
NoSuchBucket, AccessDenied and the like are refusals for good, in words that
say what to fix; 5xx, SlowDown and connection failures are worth another try.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from ..api.connection import ObjectStoreSink
from .delivery import Delivery, FileChanged, Outcome, opened

if TYPE_CHECKING:  # boto3's clients are made at run time; no stubs are needed to run
    S3Client = Any
else:
    S3Client = object

DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
TRANSFER = TransferConfig(
    multipart_threshold=64 * 1024 * 1024,
    multipart_chunksize=16 * 1024 * 1024,
    max_concurrency=4,
)
"""Files over 64 MiB go in 16 MiB parts, four at a time."""

RETRY_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling",
    "ThrottlingException", "RequestTimeTooSkewed", "OperationAborted", "503", "500",
})
NOT_THERE = frozenset({"404", "NoSuchKey", "NotFound", "403", "AccessDenied", "Forbidden"})
"""What a HEAD answers when there is nothing to skip (403: no read permission,
which a put-only key may lack)."""


def object_key(sink: ObjectStoreSink, delivery: Delivery) -> str:
    return f"{sink.prefix}{delivery.connection}/{delivery.trace_id}/{delivery.name}"


def describe(sink: ObjectStoreSink) -> str:
    """The bucket, for words: never the endpoint's user:password or query."""
    if sink.endpoint is None:
        return f"s3://{sink.bucket}"
    endpoint = urlsplit(sink.endpoint)
    host = endpoint.hostname or "?"
    port = f":{endpoint.port}" if endpoint.port else ""
    return f"s3://{sink.bucket} at {host}{port}"


def put(sink: ObjectStoreSink, delivery: Delivery, *, access_key_id: str,
        secret_access_key: str, transfer: TransferConfig = TRANSFER,
        client: S3Client | None = None) -> Outcome:
    """One attempt at putting the file into the sink's bucket."""
    key = object_key(sink, delivery)
    bucket = describe(sink)
    secret = sink.credentials_secret_ref.name
    try:
        s3 = client or s3_client(sink.endpoint, sink.region, access_key_id, secret_access_key)
        there = _head(s3, sink.bucket, key)
        if there is not None and there.get("sha256") == delivery.sha256:
            return Outcome.done(f"already in {bucket} as {key} (same sha256): not uploaded "
                                "again")
        with opened(delivery) as (body, content_type, _):
            s3.upload_fileobj(
                body, sink.bucket, key, Config=transfer,
                ExtraArgs={"ContentType": content_type, "Metadata": {
                    "sha256": delivery.sha256, "trace-id": delivery.trace_id,
                    "connection": delivery.connection, "data-type": delivery.data_type}})
    except FileNotFoundError:
        return Outcome.refused(f"{delivery.name} is no longer on the volume: not put into "
                               f"{bucket}")
    except FileChanged as err:
        return Outcome.refused(f"{err}: not put into {bucket}")
    except ClientError as err:
        return client_error(err, bucket, sink, secret)
    except (EndpointConnectionError, BotoConnectionError, ConnectionClosedError,
            ReadTimeoutError) as err:
        return Outcome.retry(f"{bucket} could not be reached ({type(err).__name__})",
                             unreachable=True)
    except (NoCredentialsError, PartialCredentialsError):
        return Outcome.retry(f"no credentials for {bucket}: the Secret {secret} needs the "
                             "keys accessKeyId and secretAccessKey")
    except (ParamValidationError, ValueError) as err:
        return Outcome.refused(f"{bucket}: the request is not valid ({_first_line(err)}): "
                               "check the objectStore's bucket, endpoint and prefix")
    except BotoCoreError as err:
        return Outcome.retry(f"{bucket}: {type(err).__name__}")
    except OSError as err:
        return Outcome.retry(f"{delivery.name} could not be read: {err.strerror or err}")
    return Outcome.done(f"put into {bucket} as {key}")


def client_error(err: ClientError, bucket: str, sink: ObjectStoreSink,
                 secret: str) -> Outcome:
    """An S3 error answer, in words: what to fix, or that it is worth a retry."""
    error: Mapping[str, Any] = err.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    said = f"{bucket} answered {code or status}"
    fixes = {
        "NoSuchBucket": f"the bucket {sink.bucket} does not exist: create it, or correct the "
                        "objectStore's bucket (and endpoint)",
        "AccessDenied": f"the access key of the Secret {secret} may not write there: grant "
                        f"it s3:PutObject (and s3:GetObject, to skip a file already there) on "
                        f"{sink.bucket}/{sink.prefix}*",
        "AllAccessDisabled": f"all access to the bucket {sink.bucket} is disabled",
        "InvalidAccessKeyId": f"the Secret {secret}'s accessKeyId is not known there: correct "
                              "it",
        "SignatureDoesNotMatch": f"the Secret {secret}'s secretAccessKey does not belong to "
                                 "its accessKeyId: correct it",
        "PermanentRedirect": f"the bucket {sink.bucket} is in another region: set the "
                             "objectStore's region to the bucket's",
        "AuthorizationHeaderMalformed": "the bucket is in another region: set the "
                                        "objectStore's region to the bucket's",
        "IllegalLocationConstraintException": "the bucket is in another region: set the "
                                              "objectStore's region to the bucket's",
        "InvalidBucketName": f"{sink.bucket} is not a valid bucket name",
        "EntityTooLarge": "the file is larger than the bucket takes",
        "InvalidAccessKeyIdOrSecret": f"the Secret {secret}'s keys are not known there",
    }
    if code in fixes:
        return Outcome.refused(f"{said}: {fixes[code]}")
    if code in RETRY_CODES or status >= 500 or status in (408, 429):
        return Outcome.retry(said, unreachable=code in ("SlowDown", "ServiceUnavailable",
                                                        "503") or status in (429, 503))
    message = _first_line(str(error.get("Message", "")))[:200]
    return Outcome.refused(f"{said}{': ' + message if message else ''}; the bucket refuses "
                           "this file, so it is not put again")


@functools.lru_cache(maxsize=16)
def s3_client(endpoint: str | None, region: str | None, access_key_id: str,
              secret_access_key: str) -> S3Client:
    """A client per endpoint, region and credentials; boto3's clients are
    thread-safe and slow to make, so each is kept. Only the credentials given
    are used: none from the environment, a profile or an instance role."""
    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        # A few quick retries of one part; the store schedules the longer ones.
        retries={"mode": "standard", "total_max_attempts": 3},
        s3={"addressing_style": "path" if endpoint else "auto"},
        signature_version="s3v4",
    )
    session = boto3.session.Session(aws_access_key_id=access_key_id,
                                    aws_secret_access_key=secret_access_key,
                                    region_name=region or DEFAULT_REGION)
    return session.client("s3", endpoint_url=endpoint, config=config)


def _head(s3: S3Client, bucket: str, key: str) -> dict[str, str] | None:
    """The object's metadata, or None when there is none to read."""
    try:
        answer = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if str(err.response.get("Error", {}).get("Code", "")) in NOT_THERE:
            return None
        raise
    return dict(answer.get("Metadata", {}))


def _first_line(err: object) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""
