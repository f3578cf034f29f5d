"""The gate's `resend` command: events the centre lost after the broker accepted them
(every monitor down and the broker's queue gone, a monitor killed with events in
flight) go out again from the outbox's kept rows, byte for byte as first sent (the
same id, seq, ts and signature), through the publisher's window beside new events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mqtt.commands import Command, Handler
    from mqtt.outbox import Outbox


def resend_handler(outbox: Outbox) -> Handler:
    """The handler of `resend` for the gate whose outbox this is."""

    def resend(command: Command) -> str:
        ranges = [(int(first), int(last)) for first, last in command.args["ranges"]]
        found = outbox.request_resend(ranges, command.args.get("after"))
        return (
            f"resending {found.resending} kept events; {found.waiting} still waiting to go; "
            f"{found.gone} no longer kept"
        )

    return resend
