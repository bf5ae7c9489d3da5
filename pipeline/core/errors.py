"""The one error tree. Decisions are made by class, never by matching message text.

    PipelineError
    ├── ConfigError              bad job spec, option or environment: exit 2, nothing sent
    ├── RunBusy                  another run of the same job holds its lock: exit 75, retry later
    ├── RunFatal                 the whole run must stop now; finished work is kept
    │   ├── AuthenticationFailed     401: the key is wrong or missing
    │   ├── BillingProblem           402: the account cannot pay
    │   ├── PermissionDenied         403: the key may not use this
    │   ├── ModelNotFound            404: the model name is wrong for this endpoint
    │   ├── SpendCapReached          429 with no retry-after and a spend-limit code
    │   ├── HostUnreachable          no connection could be made, after retries
    │   ├── StorageRefused           object storage refused the credentials, or cannot be reached
    │   ├── NotOffered               404 on an endpoint a gateway may leave out (count_tokens,
    │   │                            Message Batches): fatal only where the job needs it
    │   ├── LimiterLost              a cluster run's shared rate limiter is gone: no call is
    │   │                            sent without it (never unlimited)
    │   └── CallersLost              every node of a cluster run that made calls is gone
    ├── InputProblem             a file that cannot become a request: an error or skipped row
    │   ├── Unreadable               cannot be opened or decoded; a broken PDF
    │   ├── EmptyDocument            a PDF with no pages or no extractable text (a scan?)
    │   ├── EncryptedDocument        a PDF that needs a password
    │   └── Skipped                  left out on purpose (status "skipped", not "error"):
    │       ├── EmptyFile                zero bytes or only white space: nothing to send
    │       ├── SecretFile               looks like credentials: never sent to a third party
    │       ├── BinaryFile               not text
    │       └── TooLarge                 over the job's inputs.max_file_bytes
    ├── RequestFailed            this request can never succeed as sent: an error row
    │   ├── InvalidRequest           400
    │   ├── RequestTooLarge          413
    │   └── RetriesExhausted         a transient failure outlasted the retry budget
    └── Transient                worth retrying, after a wait
        ├── RateLimited              429 (``retry_after``)
        ├── Overloaded               529
        ├── ServerError              500, 502, 503, 504 and other 5xx
        ├── RequestTimeout           408
        ├── Conflict                 409
        ├── ConnectionFailed         connect error, reset, refused
        ├── ReplyTimedOut            no complete reply within the timeout
        └── BrokenReply              a truncated or non-JSON body, or an error mid-stream

API errors carry the HTTP status, the API's ``error.type`` and the ``request-id`` (what a
provider's support asks for); ``should_retry`` holds the server's ``x-should-retry`` verdict
when it gave one, which overrides the class's default. No message ever holds the API key.
"""

from __future__ import annotations

from typing import Any


class PipelineError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source  # the input file it is about, where there is one
        self.message = message
        self.status = status
        self.error_type = error_type
        self.request_id = request_id
        self.retry_after = retry_after
        self.should_retry = should_retry

    @property
    def kind(self) -> str:
        """Short name for reports and error rows, e.g. ``rate_limited``."""
        name = type(self).__name__
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")

    def __str__(self) -> str:
        details = [f"HTTP {self.status}"] if self.status else []
        if self.error_type:
            details.append(self.error_type)
        if self.request_id:
            details.append(f"request-id {self.request_id}")
        return f"{self.message} ({', '.join(details)})" if details else self.message


class ConfigError(PipelineError):
    pass


class RunBusy(PipelineError):
    pass


class RunFatal(PipelineError):
    pass


class NotSent(PipelineError):
    """The engine is stopping (a signal, the deadline, the budget): the call was never sent,
    and its document stays unfinished for the next run."""


class AuthenticationFailed(RunFatal):
    pass


class BillingProblem(RunFatal):
    pass


class PermissionDenied(RunFatal):
    pass


class ModelNotFound(RunFatal):
    pass


class SpendCapReached(RunFatal):
    pass


class HostUnreachable(RunFatal):
    pass


class StorageRefused(RunFatal):
    pass


class NotOffered(RunFatal):
    pass


class LimiterLost(RunFatal):
    pass


class CallersLost(RunFatal):
    pass


class InputProblem(PipelineError):
    # A table row's inputs.keep_columns, by output column: its row carries them too.
    kept: dict[str, object] = {}  # noqa: RUF012 (set per instance, never mutated)


class Unreadable(InputProblem):
    pass


class EmptyDocument(InputProblem):
    pass


class EncryptedDocument(InputProblem):
    pass


class Skipped(InputProblem):
    pass


class EmptyFile(Skipped):
    pass


class SecretFile(Skipped):
    pass


class BinaryFile(Skipped):
    pass


class TooLarge(Skipped):
    pass


class RequestFailed(PipelineError):
    pass


class InvalidRequest(RequestFailed):
    pass


class RequestTooLarge(RequestFailed):
    pass


class RetriesExhausted(RequestFailed):
    pass


class Transient(PipelineError):
    pass


class RateLimited(Transient):
    pass


class Overloaded(Transient):
    pass


class ServerError(Transient):
    pass


class RequestTimeout(Transient):
    pass


class Conflict(Transient):
    pass


class ConnectionFailed(Transient):
    pass


class ReplyTimedOut(Transient):
    pass


class BrokenReply(Transient):
    pass


def is_retryable(exc: BaseException) -> bool:
    """Retry a transient failure unless the server said not to; retry others only if it said so.

    Run-fatal errors are never retried, whatever the server says: a wrong key stays wrong.
    """
    if not isinstance(exc, PipelineError) or isinstance(exc, RunFatal | ConfigError):
        return False
    if exc.should_retry is not None:
        return exc.should_retry
    return isinstance(exc, Transient)


def first_pipeline_error(group: BaseExceptionGroup[Any]) -> PipelineError | None:
    """The first of our errors in a task group's exceptions, to raise as itself (a message
    that says what to fix), not wrapped in the group."""
    for exc in group.exceptions:
        if isinstance(exc, PipelineError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = first_pipeline_error(exc)
            if found is not None:
                return found
    return None
