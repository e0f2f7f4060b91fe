"""The bot's settings: the Discord token and what the bot adds to the core's LAYERPEEK_* ones.

Read from the environment and a ``.env`` file in the working directory (the environment wins),
like every long-running layerpeek process.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from layerpeek.core.settings import Settings, load_settings
from layerpeek.links.settings import LinkSettings


class BotSettings(BaseSettings):
    """What an operator sets for the bot; fields map to ``LAYERPEEK_BOT_<NAME>``."""

    # env_ignore_empty: a copied .env.example leaves settings empty, meaning "the default".
    model_config = SettingsConfigDict(
        env_prefix="LAYERPEEK_BOT_",
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

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
        default_factory=lambda: load_settings(LinkSettings, _env_file=".env"),
        description="the shared LAYERPEEK_LINK_* settings; links appear only when enabled",
    )
    link_host: str = Field(default="127.0.0.1", description="address the link server binds")
    link_port: int = Field(default=8088, ge=0, le=65535, description="port the link server binds")
    attach_max_bytes: int = Field(
        default=8 << 20, ge=1, description="largest file /cat attaches to its answer"
    )

    @staticmethod
    def core() -> Settings:
        """The core's LAYERPEEK_* settings, also read from ``.env`` (the CLI reads only the
        environment; a bot is configured in one file)."""
        return load_settings(Settings, _env_file=".env", _env_ignore_empty=True)

    @property
    def links_enabled(self) -> bool:
        return self.links.enabled
