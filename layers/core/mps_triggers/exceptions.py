"""The project's typed errors, outside the MPS API family (which lives in :mod:`mps_triggers.mps`).

Every error the core raises on bad input or bad configuration is one of these, so callers (and the fuzz tests)
can tell "the input was wrong" from "the code is wrong"::

    MpsTriggersError
    ├── ConfigError          an environment variable is missing or invalid (names the variable)
    ├── EventError           an invocation or one of its records has the wrong shape (names record and field)
    ├── RecordError          handling one record raised something unexpected (RecursionError, UnicodeError, ...)
    ├── DeadlineError        a record was not started, or not finished, before the invocation's deadline
    ├── SecretError          a Secrets Manager secret could not be read or lacks a field
    ├── MpsRuleError         the request an object needs breaks a documented MPS rule (permanent; names the rule)
    ├── BatchProcessingError a direct (non-SQS) invocation had failed records; carries each record's error
    ├── ClaimBusyError       another invocation holds the object's claim (BatchProcessMedia); delivered again later
    ├── storage.StorageError writing an archive object failed
    ├── webhook.WebhookError a chat/webhook push failed (never fails a callback: recorded under push_failed)
    └── mps.MpsError         the MPS API or the transport to it failed (see mps.py)
"""
from __future__ import annotations


class MpsTriggersError(Exception):
    """Base class of every error raised by mps_triggers."""


class ConfigError(MpsTriggersError):
    """Configuration is invalid. ``variable`` names the environment variable(s) at fault.

    Example: ``ConfigError("MPS_ROUTES[1].schedule_id", "must be an integer")`` renders as
    ``MPS_ROUTES[1].schedule_id: must be an integer``.
    """

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class EventError(MpsTriggersError):
    """An event (or one record of it) cannot be understood.

    ``record`` identifies the record (an SQS ``messageId`` or a path such as ``Records[2]``), ``field`` the
    JSON path inside it (``body``, ``s3.object.key``, ...), ``problem`` what is wrong.
    """

    def __init__(self, record: str, field: str, problem: str) -> None:
        self.record = record
        self.field = field
        self.problem = problem
        super().__init__(f"record {record}: field {field}: {problem}")


class RecordError(MpsTriggersError):
    """Handling one record raised an exception that is not one of the project's typed errors.

    The record guard (:func:`mps_triggers.invocation.guard`) turns it into this record's failure, so it never fails
    the batch. ``record`` names the record, ``error_type`` the original exception's class, ``problem`` its message.
    """

    def __init__(self, record: str, error_type: str, problem: str) -> None:
        self.record = record
        self.error_type = error_type
        self.problem = problem
        super().__init__(f"record {record}: internal error: {error_type}: {problem}")


class DeadlineError(MpsTriggersError):
    """Not started, or not finished, before the invocation's deadline: the platform delivers the record again."""


class SecretError(MpsTriggersError):
    """A credentials secret (AWS Secrets Manager) could not be fetched or has not the documented fields."""


class MpsRuleError(MpsTriggersError):
    """The request this object needs breaks a documented MPS rule that the configuration alone could not decide
    (an S3 input in a region MPS does not read from, an output folder past the key limit, ...). Permanent: the
    record fails every time, so it ends in the DLQ with this message. ``rule`` names the rule
    (:data:`mps_triggers.constraints.RULES`), ``problem`` says what to change."""

    def __init__(self, rule: str, problem: str) -> None:
        self.rule = rule
        self.problem = problem
        super().__init__(f"{rule}: {problem}")


class ClaimBusyError(MpsTriggersError):
    """Another invocation holds this object's claim (:mod:`mps_triggers.claims`) and may still be submitting it.

    The record fails so that the platform delivers it again (by then the claim says submitted, or its lease has
    run out); it is never counted done here, since the holder may fail. ``lease_until`` is UNIX seconds.
    """

    def __init__(self, session_id: str, lease_until: float, holder: str | None) -> None:
        self.session_id = session_id
        self.lease_until = lease_until
        self.holder = holder
        super().__init__(f"{session_id} is claimed by invocation {holder or '?'} until {lease_until:.0f} "
                         f"(UNIX s); delivered again later")


class BatchProcessingError(MpsTriggersError):
    """Raised for a direct invocation (S3, EventBridge, SNS, COS) in which records failed, so the platform retries.

    ``errors`` maps each failed record id to its exception; ``str()`` lists them all, so one log line tells the
    whole story. Records that succeeded are safe to redo: their SessionId makes MPS reject the repeat.
    """

    def __init__(self, errors: dict[str, BaseException], total: int) -> None:
        self.errors = errors
        self.total = total
        details = "; ".join(f"{rid}: {type(e).__name__}: {e}" for rid, e in errors.items())
        super().__init__(f"{len(errors)} of {total} records failed: {details}")
