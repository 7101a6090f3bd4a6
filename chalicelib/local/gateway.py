"""``chalice local`` answering in the API's error model: ``python -m chalicelib.local.gateway local …``
takes the arguments of ``chalice local`` (``make run`` starts it so).

Chalice's local gateway answers a path no route serves itself, as API Gateway does, with a 403 and
``{"message": "Missing Authentication Token"}``. Here it answers 404 ``route.not_found`` in
``{code, message_zh, message_en}`` like every other error, the answer infra's gateway response gives
on AWS. Everything else is ``chalice local`` unchanged (its reloader included).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from chalice.local import ChaliceRequestHandler, ForbiddenError, LocalGateway, ThreadedHTTPServer

from chalicelib.kernel.errors import BadRequest, DomainError, NotFound, PayloadTooLarge
from chalicelib.local.profiling import profile_on_signal


def route_not_found() -> NotFound:
    """The error of a path no route serves (404; infra maps API Gateway's own answer to the same)."""
    return NotFound("route.not_found", "请求的地址不存在", "No route serves this path")


#: API Gateway's hard limit on a request's payload; ``chalice local`` refuses above it as well.
GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024


def body_refused(length: int) -> DomainError:
    """The refusal of a body declared ``length`` bytes long (-1: a ``Content-Length`` that is no number)."""
    if length < 0:
        return BadRequest(
            "request.content_length", "请求头 Content-Length 无效", "The Content-Length header is invalid"
        )
    return PayloadTooLarge(
        "request.too_large",
        "请求内容过大，不能超过 10 MB",
        f"The request body is larger than {GATEWAY_MAX_BODY_BYTES} bytes",
        details={"max_bytes": GATEWAY_MAX_BODY_BYTES},
    )


class ErrorModelGateway(LocalGateway):
    """Chalice's local gateway with its "no such route" answer in the error model."""

    def handle_request(
        self, method: str, path: str, headers: dict[str, Any], body: bytes | None
    ) -> dict[str, Any]:
        try:
            return super().handle_request(method, path, headers, body)
        except ForbiddenError as exc:
            try:
                self._generate_lambda_event(method, path, headers, body)
            except ValueError:
                return self.not_found(exc.headers)
            raise  # an authorizer's refusal: not ours to rewrite

    @staticmethod
    def not_found(gateway_headers: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {k: v for k, v in (gateway_headers or {}).items() if k.lower() == "x-amzn-requestid"}
        headers["Content-Type"] = "application/json; charset=utf-8"
        return {
            "statusCode": 404,
            "headers": headers,
            "multiValueHeaders": {},
            "body": json.dumps(route_not_found().to_dict(), ensure_ascii=False, separators=(",", ":")),
        }


class ErrorModelRequestHandler(ChaliceRequestHandler):
    """The local server's request handler, on ``ErrorModelGateway``."""

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Any) -> None:
        # ChaliceRequestHandler handles the request inside __init__: the gateway must be swapped first.
        self.local_gateway = ErrorModelGateway(app_object, config)
        super(ChaliceRequestHandler, self).__init__(request, client_address, server)

    def _generic_handle(self) -> None:
        """Refuse a body API Gateway would refuse, before reading it: ``chalice local`` reads whatever
        ``Content-Length`` claims into memory, and a claim that is no number kills the connection."""
        given = self.headers.get("content-length")
        if given is not None:
            try:
                length = int(given)
            except ValueError:
                length = -1
            if length < 0 or length > GATEWAY_MAX_BODY_BYTES:
                refusal = body_refused(length)
                self.close_connection = True  # the unread body must not be taken for the next request
                body = json.dumps(refusal.to_dict(), ensure_ascii=False, separators=(",", ":"))
                headers = {"Content-Type": "application/json; charset=utf-8", "Connection": "close"}
                self._send_http_response(refusal.status, headers, body)
                return
        super()._generic_handle()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle


class ListeningServer(ThreadedHTTPServer):
    """Chalice's threaded local server with a listen backlog of 128 (``socketserver``'s is 5).

    With a backlog of 5, more than five connections arriving while the accepting thread is busy (the
    H5 client's parallel requests, a load run of 30 owners at a time) overflow the kernel's accept
    queue: the client's handshake is dropped and retried a second later, or its connection is reset.
    128 is what werkzeug (moto's server) listens with."""

    request_queue_size = 128


def _create_local_server(self: Any, app_obj: Any, config: Any, host: str, port: int) -> Any:
    """``chalice.local.create_local_server`` with ``ErrorModelRequestHandler`` on ``ListeningServer``."""
    from chalice import local

    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app_obj.__class__)
    app_obj.__class__ = local.CustomLocalChalice
    return local.LocalDevServer(
        app_obj, config, host, port, handler_cls=ErrorModelRequestHandler, server_cls=ListeningServer
    )


def main(argv: list[str] | None = None) -> int:
    """``chalice`` (``local`` and its options) with the error-model gateway."""
    from chalice.cli import cli
    from chalice.cli.factory import CLIFactory

    CLIFactory.create_local_server = _create_local_server  # type: ignore[method-assign]
    profile_on_signal("api")
    args = sys.argv[1:] if argv is None else argv
    # chalice's reloader re-runs sys.argv in a child process: make it this module again.
    sys.argv = [sys.executable, "-m", "chalicelib.local.gateway", *args]
    try:
        cli.main(args=args, obj={}, prog_name="chalice", standalone_mode=False)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
