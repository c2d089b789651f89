"""Every tunable of the pipeline, read from the environment (prefix ``BULKSEND_``).

One class so that producers, workers, the sandbox and the CLI agree on the same
names; ``.env.example`` lists each of them. Credentials are ``SecretStr`` so
that they never show up in a repr or a log line.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobs.fields import OTP_RANGES

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKSEND_", env_file=".env", extra="ignore")

    # --- Redis -------------------------------------------------------------
    redis_url: str | None = Field(
        None,
        description="Redis to use (redis://, rediss://, or redis+sentinel://[:password@]"
        "host:port[,host:port]/master[/db]); unset starts an embedded redis-server under "
        "data_dir",
    )
    data_dir: str = Field(".bulksend", description="Embedded Redis data and AOF directory")
    queue_name: str = Field("bulksend:queue", description="arq queue name")

    # --- messaging provider (Basic auth) ----------------------------------
    provider_url: str = Field("http://127.0.0.1:8025", description="Messaging API base URL")
    provider_username: str = Field("sandbox", description="Messaging API username")
    provider_api_password: SecretStr = Field(
        SecretStr("sandbox-api-password"), description="Messaging API apiPassword"
    )
    provider_timeout: float = Field(10.0, gt=0, description="Seconds to wait for the provider")
    provider_max_connections: int = Field(
        20, ge=1, description="Pooled connections, and concurrent provider calls, per worker"
    )

    # --- mail marketing API (PublicKey / SecretKey headers) ----------------
    mail_api_url: str = Field("http://127.0.0.1:8025", description="Mail marketing API base URL")
    mail_public_key: SecretStr = Field(SecretStr("sandbox-public"), description="Mail PublicKey")
    mail_secret_key: SecretStr = Field(SecretStr("sandbox-secret"), description="Mail SecretKey")

    # --- email attachments ----------------------------------------------------
    # Our limits, not the provider's (the doc gives none): a base64 JSON body of
    # ~27 MiB is already more than one provider call should carry, and every
    # attachment is billed ("Attached files have an additional cost").
    max_attachment_mb: float = Field(10, gt=0, description="Largest email attachment, MiB")
    max_message_attachments_mb: float = Field(
        20, gt=0, description="Largest total of one email's attachments, MiB"
    )

    # --- contact imports ------------------------------------------------------
    import_upload_max_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="Largest CSV file of one upload to the mail API (--target mail)",
    )

    # --- producer -----------------------------------------------------------
    chunk_size: int = Field(1000, ge=1, le=10_000, description="Recipients per chunk job")

    # --- SMS text ------------------------------------------------------------
    short_link_length: int = Field(
        21, ge=16, description="Length of the provider's short links ({url|shorten}, {UNSUB_URL})"
    )
    otp_code_length: int = Field(
        4,
        ge=OTP_RANGES["length"][0],
        le=OTP_RANGES["length"][1],
        description="{OTP_CODE} length when otpConfig gives none",
    )
    allow_unknown_variables: bool = Field(
        False, description="Let {var} without a value through (the contact's fields may fill it)"
    )

    # --- worker ---------------------------------------------------------------
    worker_max_jobs: int = Field(
        100, ge=1, description="Jobs one worker runs at once (many small ones coalesce)"
    )
    worker_max_recipients: int | None = Field(
        None,
        ge=1,
        description="Recipients one worker's runs hold in memory at once, bounding its RSS "
        "(a chunk waits for its share before it is read); unset: two chunks for each "
        "provider connection",
    )
    worker_poll_delay: float = Field(
        0.01, gt=0, description="Seconds between a worker's looks at the queue"
    )
    linger_ms: float = Field(
        10, ge=0, description="Micro-batching window: how long a call may wait for others"
    )
    job_timeout: int = Field(
        30,
        ge=5,
        description="Seconds one run of a chunk job may take; a killed worker's jobs run "
        "again this + 10 s after they started (waiting for a turn does not count)",
    )
    max_attempts: int = Field(5, ge=1, description="Provider attempts per recipient")
    max_age: float = Field(
        86400.0, gt=0, description="Seconds after submit when a recipient still retrying fails"
    )
    retry_delay: float = Field(1.0, ge=0, description="First retry delay in seconds (doubles)")
    on_ambiguous: Literal["hold", "resend"] = Field(
        "hold", description="Recipients whose request may have landed: record unknown or resend"
    )
    hold_probe_interval: float = Field(
        60.0, ge=0, description="Seconds between automatic probes of a held account (0: never)"
    )
    rate_messages_per_second: float = Field(
        0, ge=0, description="Recipients per second per account, all workers (0: no limit)"
    )
    rate_requests_per_second: float = Field(
        0, ge=0, description="Provider calls per second per account, all workers (0: no limit)"
    )
    result_ttl_days: int = Field(30, ge=1, description="Days a finished sending's results stay")
    sweep_interval: float = Field(
        30.0,
        gt=0,
        description="Seconds between sweeps for chunks without a job, parked work to resume "
        "and holds to probe",
    )
    stale_submit_after: float = Field(
        600.0,
        gt=0,
        description="Seconds without progress after which a submit is taken as crashed and "
        "its sending opened with what was recorded",
    )

    # --- suppression: the provider's blacklist (worker/blacklist.py) ------------
    blacklist_sync: bool = Field(
        False,
        description="Sync the suppression lists with the provider's blacklist (sms, voice, "
        "mailing): workers pull its entries and push the addresses we add or remove",
    )
    blacklist_sync_interval: float = Field(
        300.0,
        gt=0,
        description="Seconds between blacklist syncs (one worker at a time, at its sweeps)",
    )

    # --- web service (bulksend serve) ------------------------------------------
    api_token: SecretStr | None = Field(
        None, description="Bearer token for every route of `bulksend serve` (required by it)"
    )
    readonly_token: SecretStr | None = Field(
        None, description="Bearer token for the GET routes of `bulksend serve` only"
    )
    api_max_body_mb: float = Field(
        25, gt=0, description="Largest request body the HTTP API reads, MiB (413 above)"
    )
    metrics_public: bool = Field(False, description="Serve /metrics without a token")

    # --- delivery notifications and events (bulksend serve's /hooks/) ----------
    public_url: str | None = Field(
        None,
        description="This service's URL as the provider reaches it (e.g. https://bulksend."
        "example.com): workers add a notificationUrl to every SMS call that has none",
    )
    hook_secret: SecretStr | None = Field(
        None,
        description="The secret in /hooks/dlr/{secret} and /hooks/events/{secret}; unset: "
        "the hooks answer 404",
    )

    # --- logs (bulksend/logs.py) ------------------------------------------------
    log_format: Literal["text", "json"] = Field(
        "text",
        description="How every role logs: text, or json (one object a line on stderr: ts, "
        "level, logger, message, sending and chunk ids; never recipient data)",
    )

    # --- sandbox --------------------------------------------------------------
    sandbox_username: str = Field("sandbox", description="Username the sandbox accepts")
    sandbox_api_password: SecretStr = Field(
        SecretStr("sandbox-api-password"), description="apiPassword the sandbox accepts"
    )

    @property
    def provider_auth(self) -> tuple[str, str]:
        return self.provider_username, self.provider_api_password.get_secret_value()

    @property
    def max_attachment_bytes(self) -> int:
        return int(self.max_attachment_mb * MIB)

    @property
    def max_message_attachments_bytes(self) -> int:
        return int(self.max_message_attachments_mb * MIB)

    @property
    def api_max_body_bytes(self) -> int:
        return int(self.api_max_body_mb * MIB)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
