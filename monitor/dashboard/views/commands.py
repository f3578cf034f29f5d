"""Commands (admins, and only when the dashboard holds the centre's command key): choose,
confirm, then the command is signed as `qrgate cmd` signs it, sent, its replies shown,
and an audit entry written."""

from __future__ import annotations

import logging

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor.dashboard import audit
from monitor.dashboard.commands import MAX_OPEN_S, OFFERED
from monitor.dashboard.commands import Request as Command
from monitor.dashboard.views.common import Viewer, dashboard, form_guard, guard, render
from mqtt.errors import MqttError
from mqtt.topics import check_level

log = logging.getLogger(__name__)


async def command_form(request: Request, viewer: Viewer, error: str | None = None) -> Response:
    dash = dashboard(request)
    gates = [gate for gate in await dash.read(lambda store: store.gates()) if not gate.retired]
    context = {
        "enabled": dash.commands is not None,
        "offered": OFFERED,
        "sites": sorted({gate.site for gate in gates}),
        "gates": gates,
        "error": error,
    }
    return await render(request, "commands.html", context, viewer, 400 if error else 200)


@guard("commands")
async def choose(request: Request, viewer: Viewer) -> Response:
    return await command_form(request, viewer)


def parse(form: FormData) -> Command:
    """The command the form asks for; ValueError saying what is wrong."""
    name = str(form.get("command", ""))
    if name not in OFFERED:
        raise ValueError(f"unknown command {name!r}")
    site = check_level("site", str(form.get("site", "")))
    target = str(form.get("gate", ""))
    gate = check_level("gate", target) if target else None
    args: dict[str, object] = {}
    seconds = str(form.get("seconds", "")).strip()
    if name == "open" and seconds:
        value = float(seconds)
        if not 0 < value <= MAX_OPEN_S:
            raise ValueError(f"seconds must be between 0 and {MAX_OPEN_S}")
        args["seconds"] = value
    return Command(name, site, gate, args)


@form_guard("commands")
async def confirm(request: Request, viewer: Viewer, form: FormData) -> Response:
    dash = dashboard(request)
    if dash.commands is None:
        return await command_form(request, viewer)
    try:
        command = parse(form)
    except (ValueError, MqttError) as error:
        return await command_form(request, viewer, str(error))
    token = dash.commands.ask(command, viewer.user.name)
    context = {"command": command, "token": token, "kid": dash.commands.kid}
    return await render(request, "command_confirm.html", context, viewer)


@form_guard("commands")
async def send(request: Request, viewer: Viewer, form: FormData) -> Response:
    dash = dashboard(request)
    sender = dash.commands
    command = sender.confirmed(str(form.get("token", "")), viewer.user.name) if sender else None
    if sender is None or command is None:
        message = viewer.locale.text("This confirmation has expired; choose the command again.")
        return await command_form(request, viewer, message)
    try:
        command_id, replies = await dash.off_loop(sender.send, command)
        failure = None
    except MqttError as error:
        command_id, replies, failure = "", [], str(error)
    outcomes = ", ".join(f"{r.site}/{r.gate}: {r.reply.get('outcome')}" for r in replies)
    detail = f"{command.name} {command.target} {command.args or ''} id={command_id} -> "
    detail += failure or outcomes or "no reply"
    await audit.record(dash, request, viewer.user.name, "command", detail)
    log.info("command by %s: %s", viewer.user.name, detail)
    context = {
        "command": command,
        "command_id": command_id,
        "replies": replies,
        "failure": failure,
        "timeout_s": sender.timeout_s,
    }
    return await render(request, "command_sent.html", context, viewer)


routes = [
    Route("/commands", choose, name="commands"),
    Route("/commands/confirm", confirm, methods=["POST"], name="commands_confirm"),
    Route("/commands/send", send, methods=["POST"], name="commands_send"),
]
