"""``layerpeek-bot``: run the bot, or preview an answer as the JSON Discord would receive.

``layerpeek-bot preview '/peek image:alpine:3.20 layer:0'`` needs no Discord token: it runs
the same answer function as the slash command and prints discord.py's message payload
(embeds, components, attachments), then checks it against Discord's limits. With ``--out
DIR`` it also writes the attachments the payload names (the layer chart, a file /cat
attaches), so they can be looked at without Discord.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import discord
from discord import app_commands

from layerpeek.bot import answers
from layerpeek.bot import packages as package_answers
from layerpeek.bot.app import LayerpeekBot, make_context
from layerpeek.bot.commands import COMMANDS, REFERENCE_OPTIONS, message_for
from layerpeek.bot.discord_limits import violations
from layerpeek.bot.reply import Reply, payload
from layerpeek.bot.settings import BotSettings
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.runtime import tuned_process
from layerpeek.core.settings import load_settings
from layerpeek.core.startup import check_service, open_service
from layerpeek.core.text import printable

Answer = Callable[..., Awaitable[Reply]]
ANSWERS: dict[str, Answer] = {
    "peek": answers.peek,
    "history": answers.history,
    "cat": answers.cat,
    "tags": answers.tags,
    "find": answers.find,
    "diff": package_answers.diff,
    "triage": answers.triage,
    "packages": package_answers.packages,
}
PREVIEW_USER = 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerpeek-bot", description="The layerpeek Discord bot (DISCORD_TOKEN in .env)."
    )
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="connect to Discord and answer slash commands (the default)")
    run.add_argument(
        "--sync-global",
        action="store_true",
        help="publish the slash commands to every guild at start (after changing them)",
    )
    preview = sub.add_parser("preview", help="print the message payload for a slash command")
    preview.add_argument("line", help="a slash command as typed, e.g. '/peek image:alpine:3.20'")
    preview.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="also write the message's attachments (e.g. layers.png) into DIR",
    )
    return parser


class UsageError(LayerpeekError):
    """A preview line that is not a known slash command with valid options."""


def _convert(option: app_commands.Parameter, text: str) -> Any:
    kind = option.type
    if kind is discord.AppCommandOptionType.integer:
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"option {option.name} takes a whole number, not {text!r}") from None
    if kind is discord.AppCommandOptionType.boolean:
        if text.lower() not in ("true", "false"):
            raise UsageError(f"option {option.name} takes true or false, not {text!r}")
        return text.lower() == "true"
    return text


def parse_line(line: str) -> tuple[str, dict[str, Any]]:
    """``/name key:value …`` → the command name and its converted options, checked against the
    command's own parameters (as Discord would check them)."""
    words = shlex.split(line)
    if not words or not words[0].startswith("/"):
        raise UsageError("write the command as typed in Discord, e.g. '/peek image:alpine:3.20'")
    commands = {c.name: c for c in COMMANDS}
    name = words[0][1:]
    if name not in commands:
        raise UsageError(f"unknown command /{name}: use one of /{', /'.join(commands)}")
    parameters = {p.name: p for p in commands[name].parameters}
    options: dict[str, Any] = {}
    for word in words[1:]:
        key, colon, value = word.partition(":")
        if not colon or key not in parameters:
            raise UsageError(f"/{name} has no option {key!r}: it takes {', '.join(parameters)}")
        options[key] = _convert(parameters[key], value)
    missing = [p.name for p in parameters.values() if p.required and p.name not in options]
    if missing:
        raise UsageError(f"/{name} needs {', '.join(f'{m}:…' for m in missing)}")
    return name, options


async def preview(line: str) -> tuple[Reply, bool]:
    """The reply the bot sends for ``line`` (an error is a one-line ephemeral message too),
    and whether the command succeeded."""
    name, options = parse_line(line)
    async with open_service(BotSettings.core(), guarded=True) as peek:
        ctx = make_context(peek, load_settings(BotSettings))
        try:
            return await ANSWERS[name](ctx, PREVIEW_USER, **options), True
        except LayerpeekError as error:
            typed = [v for k, v in options.items() if k in REFERENCE_OPTIONS]
            return Reply(content=message_for(error, typed), ephemeral=True), False


def write_attachments(reply: Reply, out: Path) -> None:
    """Each attachment of ``reply`` as a file in ``out`` under the name the message gives it
    (names the bot made safe: ``links.endpoint.attachment_name`` or fixed ones)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, data in reply.files.items():
        target = out / Path(name).name  # a bare name, whatever a future answer calls it
        target.write_bytes(data)
        sys.stderr.write(f"layerpeek-bot: wrote {printable(str(target))}\n")


def _preview_main(line: str, out: Path | None) -> int:
    try:
        reply, ok = anyio.run(preview, line)
        result = payload(reply)
        if out is not None:
            write_attachments(reply, out)
    except (LayerpeekError, ValueError, OSError) as error:
        return _fail(str(error))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    broken = violations(result)
    for problem in broken:
        sys.stderr.write(f"layerpeek-bot: over a Discord limit: {problem}\n")
    return 0 if ok and not broken else 1


def _run_main(sync_global: bool) -> int:
    try:
        settings, core = load_settings(BotSettings), BotSettings.core()
        if settings.token is None:
            return _fail("set DISCORD_TOKEN (in the environment or .env) to the bot's token")
        check_service(core, guarded=True)
    except LayerpeekError as error:
        return _fail(str(error))
    bot = LayerpeekBot(settings, core, sync_global=sync_global)
    discord.utils.setup_logging(level=logging.INFO)
    with tuned_process():
        bot.run(settings.token.get_secret_value(), log_handler=None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "preview":
        return _preview_main(args.line, args.out)
    return _run_main(getattr(args, "sync_global", False))


def _fail(message: str) -> int:
    sys.stderr.write(f"layerpeek-bot: error: {printable(message)}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
