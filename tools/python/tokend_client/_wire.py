"""The protocol state of one connection, shared by the threaded and the asyncio client: request
ids, the requests in flight, matching replies to them (section 13). No I/O here."""

from __future__ import annotations

from typing import Any, Callable

from .errors import ConnectionLostError, ProtocolError, TokendError
from .protocol import Opcode, Response, Status, opcode_name

__all__ = ["MAX_REQUEST_ID", "Slot", "Wire"]

MAX_REQUEST_ID = 0xFFFF_FFFF


class Slot:
    """One request in flight: its opcode, then its reply or the error that ended it.

    ``waiter`` is what the caller waits on (set by the client; None once the caller gave up, so
    that a late reply is dropped)."""

    __slots__ = ("opcode", "request_id", "response", "error", "waiter")

    def __init__(self, opcode: int, waiter: Any) -> None:
        self.opcode = opcode
        self.request_id = 0
        self.response: Response | None = None
        self.error: TokendError | None = None
        self.waiter = waiter

    @property
    def done(self) -> bool:
        return self.response is not None or self.error is not None

    def outcome(self) -> Response | TokendError | None:
        return self.response if self.response is not None else self.error


class Wire:
    """Request ids and requests in flight of one connection.

    Ids run 1..2^32-1 (0 is left to the opcode-0 replies, section 5.2), skipping any still in
    flight. A request whose caller gave up (timeout) stays in flight until its reply comes or
    the connection ends, so that its id is not reused while the daemon may still answer it.
    """

    def __init__(self) -> None:
        self.next_id = 1
        self.in_flight: dict[int, Slot] = {}
        self.notice: Response | None = None  # an opcode-0 too_large reply about this connection
        self.on_invalidate: Callable[[Response], None] | None = None
        """Given each invalidation frame (12.17) as it is read; None: they are ignored (only a
        connection that sent ``track`` receives them)."""

    def register(self, slot: Slot) -> int:
        if len(self.in_flight) >= MAX_REQUEST_ID - 1:
            raise ValueError("too many requests in flight for one connection's id space")
        in_flight = self.in_flight
        while True:
            request_id = self.next_id
            self.next_id = request_id + 1 if request_id < MAX_REQUEST_ID else 1
            if request_id not in in_flight:
                break
        slot.request_id = request_id
        in_flight[request_id] = slot
        return request_id

    def dispatch(self, response: Response) -> Slot | None:
        """Match a reply to its request: the slot it completes, or None when it answers no
        request in flight (ignored, section 14.2). Raises :class:`ProtocolError` for a reply
        that cannot be trusted (the connection must then be closed)."""
        if response.request_id == 0 and response.opcode == Opcode.INVALIDATE:
            if self.on_invalidate is not None:
                self.on_invalidate(response)
            return None
        if response.is_connection_notice:
            if response.status == Status.TOO_LARGE:
                # The daemon answers what it read before, then closes (section 4.3).
                self.notice = response
                return None
            raise ProtocolError(
                "tokend could not read one of this client's frames as a request: "
                f"{response.status_name}: {response.message}")
        slot = self.in_flight.get(response.request_id)
        if slot is None:
            return None
        if response.opcode != slot.opcode:
            raise ProtocolError(
                f"the reply to request {response.request_id} echoes opcode "
                f"{opcode_name(response.opcode)}, not {opcode_name(slot.opcode)}")
        del self.in_flight[response.request_id]
        slot.response = response
        return slot

    def lost_reason(self) -> str:
        if self.notice is not None:
            return ("tokend closed the connection after a too_large reply "
                    f"({self.notice.message}); outcome unknown")
        return "tokend closed the connection before answering; outcome unknown"

    def fail_all(self, make_error: Callable[[], TokendError]) -> list[Slot]:
        """End every request in flight with a new error each; the slots ended."""
        slots = list(self.in_flight.values())
        self.in_flight.clear()
        for slot in slots:
            slot.error = make_error()
        return slots


class ClosedByClient(ConnectionLostError):
    """Internal: the call ended because the client itself was closed (never repeated)."""


def lost(reason: str) -> Callable[[], TokendError]:
    return lambda: ConnectionLostError(reason)


def closed_by_client() -> TokendError:
    return ClosedByClient("the client was closed with the request unanswered; outcome unknown")


def protocol_failure(message: str) -> Callable[[], TokendError]:
    return lambda: ProtocolError(message)
