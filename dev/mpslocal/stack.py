"""The local stack (dev-only): moto in server mode for S3, SQS and COS buckets, plus the MPS emulator.

moto serves COS through the real COS SDK: ``CosConfig(IP=..., Port=..., Scheme="http")`` keeps the real
virtual-host ``Host: {bucket}.cos.{region}.myqcloud.com`` header, and :class:`CosAuthShim` moves the COS
``Authorization`` header (``q-sign-algorithm=sha1&...``) aside, which moto's SigV4-only dispatcher would otherwise
fail on with HTTP 500 (reference/tooling.md §3a). The signature is kept in ``X-Cos-Authorization`` and counted.

Example::

    with LocalStack() as stack:
        s3 = stack.boto3("s3"); cos = stack.cos("ap-guangzhou")
        os.environ.update(stack.environment())     # AWS_ENDPOINT_URL, COS_ENDPOINT_URL, MPS_ENDPOINT, keys
"""
from __future__ import annotations

import os
import threading
from typing import Any

from .emulator import MpsEmulator

AWS_REGION = "us-east-1"
AWS_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
COS_KEYS = ("AKIDlocalCOS", "local-cos-secret")


class CosAuthShim:
    """WSGI middleware: a COS-signed request keeps its signature in ``HTTP_X_COS_AUTHORIZATION``, and moto sees an
    empty ``Authorization`` (which it treats as an authorised unsigned request)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cos_requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth.startswith("q-sign-algorithm="):
            environ["HTTP_X_COS_AUTHORIZATION"] = auth
            environ["HTTP_AUTHORIZATION"] = ""
            self.cos_requests += 1
        return self.app(environ, start_response)


class MotoServer:
    """moto in server mode on 127.0.0.1 (threaded werkzeug server), wrapped in :class:`CosAuthShim`."""

    def __init__(self, port: int = 0) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:  # keep demo and test output readable
                pass

        self.shim = CosAuthShim(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", port, self.shim, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MotoServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class LocalStack:
    """moto server + MPS emulator, started together; hands out clients and the handler environment."""

    def __init__(self, rate_limit: int | None = 100, latency: float = 0.0, complete_after: float | None = None) -> None:
        for k, v in AWS_KEYS.items():
            os.environ.setdefault(k, v)
        os.environ.setdefault("AWS_DEFAULT_REGION", AWS_REGION)
        self.moto = MotoServer()
        self.mps = MpsEmulator(rate_limit=rate_limit, latency=latency, complete_after=complete_after,
                               sqs_endpoint=self.moto.url)

    def start(self) -> "LocalStack":
        self.moto.start()
        self.mps.start()
        return self

    def stop(self) -> None:
        self.mps.stop()
        self.moto.stop()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def boto3(self, service: str, region: str = AWS_REGION) -> Any:
        import boto3

        return boto3.client(service, region_name=region, endpoint_url=self.moto.url)

    def cos(self, region: str = "ap-guangzhou") -> Any:
        """A real ``qcloud_cos.CosS3Client`` whose requests go to moto (virtual-host Host header kept)."""
        from qcloud_cos import CosConfig, CosS3Client

        return CosS3Client(CosConfig(Region=region, SecretId=COS_KEYS[0], SecretKey=COS_KEYS[1], Scheme="http",
                                     IP="127.0.0.1", Port=self.moto.port))

    def environment(self) -> dict[str, str]:
        """What a handler needs to talk to this stack: local endpoints and the emulator's API keys."""
        secret_id, (secret_key, token) = next(iter(self.mps.credentials.items()))
        env = {"AWS_ENDPOINT_URL": self.moto.url, "COS_ENDPOINT_URL": self.moto.url, "MPS_ENDPOINT": self.mps.url,
               "MPS_SECRET_ID": secret_id, "MPS_SECRET_KEY": secret_key, "AWS_DEFAULT_REGION": AWS_REGION, **AWS_KEYS}
        if token:
            env["MPS_SESSION_TOKEN"] = token
        return env
