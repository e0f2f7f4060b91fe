"""The bot's settings: the Discord token and what the bot adds to the core's LAYERPEEK_* ones.

Read as every long-running layerpeek process reads its settings (``core.settings``).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from layerpeek.core.settings import EnvSettings, Settings, load_settings
from layerpeek.links.settings import LinkSettings


class BotSettings(EnvSettings):
    """What an operator sets for the bot; fields map to ``LAYERPEEK_BOT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LAYERPEEK_BOT_", populate_by_name=True)

    # discord.py's own examples and most hosting guides call it DISCORD_TOKEN: accept that name.
    token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DISCORD_TOKEN", "LAYERPEEK_BOT_TOKEN"),
        description="the bot token from the Discord developer portal",
    )
    dev_guild: int | None = Field(
        default=None, description="guild id to sync commands to at start (instant, for testing)"
    )
    page_size: int = Field(default=20, ge=5, le=50, description="entries per listing page")
    state_days: int = Field(
        default=14, ge=1, description="days a message's buttons keep working after it was sent"
    )
    user_rate: int = Field(default=6, ge=1, description="expensive commands per user per minute")
    guild_rate: int = Field(default=30, ge=1, description="expensive commands per guild per minute")
    user_concurrent: int = Field(
        default=2, ge=1, description="commands (and button presses) one user may have running"
    )
    links: LinkSettings = Field(
        default_factory=lambda: load_settings(LinkSettings),
        description="the shared LAYERPEEK_LINK_* settings; links appear only when enabled",
    )
    link_host: str = Field(default="127.0.0.1", description="address the link server binds")
    link_port: int = Field(default=8088, ge=0, le=65535, description="port the link server binds")
    attach_max_bytes: int = Field(
        default=8 << 20, ge=1, description="largest file /cat attaches to its answer"
    )

    @staticmethod
    def core() -> Settings:
        """The core's LAYERPEEK_* settings (a bot is configured in one file)."""
        return load_settings(Settings)

    @property
    def links_enabled(self) -> bool:
        return self.links.enabled
