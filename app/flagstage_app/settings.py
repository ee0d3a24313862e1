"""The app's settings, read once from the environment (and a `.env` file when present).

Every knob the insights API has lives here, so the other modules take a `Settings` object
instead of reading the environment themselves; tests build one directly. Live feature toggles
are not settings: they come from the mounted features directory and change without a restart.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/flagstage.db"


class Settings(BaseSettings):
    """Configuration of one app process; field names are the environment variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL; the default is an SQLite file, postgresql:// uses psycopg 3.",
    )
    qdrant_url: str | None = Field(
        default=None, description="Qdrant server; unset means Qdrant's embedded local mode."
    )
    qdrant_path: str | None = Field(
        default=None,
        description="Where local mode keeps its data (a directory, or :memory:); unset means a "
        "`qdrant` directory beside the SQLite database, or ./var/qdrant.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="OpenAI key; unset means the offline embedder and answers."
    )
    openai_base_url: str | None = Field(
        default=None, description="An OpenAI-compatible endpoint instead of api.openai.com."
    )
    features_config_dir: Path | None = Field(
        default=None, description="The mounted features ConfigMap directory (features.json)."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for the refresh endpoints; unset refuses them."
    )
    rag_similarity_threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    rag_top_k: int = Field(default=10, ge=1, le=100)
    upload_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1,
        description="Largest file `POST /api/uploads` takes with enhanced_upload on (413 above).",
    )
    upload_max_rows: int = Field(
        default=100_000,
        ge=1,
        description="Most rows `POST /api/uploads` takes with enhanced_upload on (422 above).",
    )
    run_migrations: bool = Field(
        default=True, description="Bring the database schema up to date at start-up."
    )


def load_settings() -> Settings:
    """Settings from the process environment."""
    return Settings()
