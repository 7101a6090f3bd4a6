"""Every ``cheka`` error in one line: a refusal as its JSON (``{"error": …}``, exit 2), anything else in words
on stderr (what happened and what to do; exit 3 when the stage cannot be reached, 1 otherwise).
``cheka --debug …`` lets the traceback through."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.error import HTTPError, URLError

#: Exit codes: a refusal (bad input, not found …) is 2, as the commands' own ``fail``.
EXIT_REFUSED = 2
EXIT_UNREACHABLE = 3
EXIT_FAILED = 1

#: AWS error codes of a resource that does not exist (the stage was not bootstrapped or deployed).
_MISSING = frozenset({"ResourceNotFoundException", "NoSuchBucket", "NotFoundException", "QueueDoesNotExist"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it (``__cause__``, ``__context__``, pynamodb's ``cause``), each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nxt in (current.__cause__, current.__context__, getattr(current, "cause", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _first_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.strip().splitlines()[:1]) or "(no message)"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _endpoint() -> tuple[str, str]:
    """The stage and the AWS endpoint in force (words, for the message)."""
    try:
        from chalicelib.core.settings import get_settings

        settings = get_settings()
        return settings.stage, settings.endpoint_url or f"AWS {settings.region}"
    except Exception:  # the settings themselves may be what failed
        return "?", "?"


def describe(exc: BaseException) -> tuple[str, int]:
    """One line saying what went wrong and what to do, and the exit code."""
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from pydantic import ValidationError

    for cause in _chain(exc):
        if isinstance(cause, BotoConnectionError | HTTPClientError):
            stage, endpoint = _endpoint()
            if stage == "local":
                return (
                    f"cheka: nothing answers at {endpoint} (the local stack's AWS): start it with "
                    "`make run`, or set CHEKA_STAGE and CHEKA_AWS_ENDPOINT_URL for another stage",
                    EXIT_UNREACHABLE,
                )
            return f"cheka: cannot reach {endpoint} for the {stage} stage: {_first_line(str(cause))}", (
                EXIT_UNREACHABLE
            )
        if isinstance(cause, NoCredentialsError | PartialCredentialsError | NoRegionError):
            stage, _ = _endpoint()
            return (
                f"cheka: no AWS credentials for the {stage} stage: set AWS_PROFILE (or the AWS_* keys) "
                "of an account that may read it",
                EXIT_UNREACHABLE,
            )
        if isinstance(cause, ClientError):
            error = cause.response.get("Error", {})
            code = str(error.get("Code", "?"))
            stage, endpoint = _endpoint()
            if code in (
                "ResourceNotFoundException",
                "NoSuchBucket",
                "NotFoundException",
                "QueueDoesNotExist",
            ):
                hint = "run `cheka bootstrap`" if stage in ("local", "test") else "deploy the stage"
                return (
                    f"cheka: the {stage} stage's resources are missing at {endpoint} ({code}): {hint}",
                    EXIT_UNREACHABLE,
                )
            if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
                return (
                    f"cheka: AWS refused access to the {stage} stage ({code}): use credentials that may "
                    "read it",
                    EXIT_UNREACHABLE,
                )
            return f"cheka: AWS answered {code}: {_first_line(str(error.get('Message', '')))}", EXIT_FAILED
        if isinstance(cause, ValidationError) and "Settings" in cause.title:
            first = cause.errors()[0]
            name = "CHEKA_" + "_".join(str(p) for p in first["loc"]).upper()
            return f"cheka: the setting {name} is invalid: {first['msg']}", EXIT_FAILED
        if isinstance(cause, URLError) and not isinstance(cause, HTTPError):
            return (
                f"cheka: a local service did not answer ({_first_line(str(cause.reason))}): is the local "
                "stack running (`make run`)?",
                EXIT_UNREACHABLE,
            )
        if isinstance(cause, ConnectionRefusedError | TimeoutError):
            return (
                f"cheka: a local service did not answer ({_first_line(str(cause))}): is the local stack "
                "running (`make run`)?",
                EXIT_UNREACHABLE,
            )
    return (
        f"cheka: {type(exc).__name__}: {_first_line(str(exc))} (`cheka --debug …` shows the traceback)",
        EXIT_FAILED,
    )
