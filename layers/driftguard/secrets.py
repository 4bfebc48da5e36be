"""Resolving credential references: `*_env` from the environment, `*_secret` from AWS Secrets
Manager (through Powertools Parameters, cached, when running in Lambda; boto3 otherwise).

A secret may hold a plain string or JSON; for database credentials the RDS JSON shape
(`username`, `password`, `host`, `port`, `dbname`) is understood.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from driftguard.errors import SecretError

SecretFetcher = Callable[[str], str]


class _SecretsManagerFetch:
    """Reads secrets with its own Powertools SecretsProvider (cached 5 minutes), created on first use
    so that a resolver that never reads a secret never builds an AWS client. Owning the provider,
    rather than using Powertools' module-wide default, ties its client and cache to this resolver:
    a new runtime gets a new provider."""

    def __init__(self) -> None:
        self._provider: Any = None

    def __call__(self, name: str) -> str:
        try:
            from aws_lambda_powertools.utilities import parameters
        except ImportError:  # pragma: no cover - base install without the aws extra
            return _boto3_fetch(name)
        if self._provider is None:
            self._provider = parameters.SecretsProvider()
        try:
            return str(self._provider.get(name, max_age=300))
        except parameters.exceptions.GetParameterError as e:
            raise SecretError(f"secret {name!r} could not be read from Secrets Manager: {e}") from None


def _boto3_fetch(name: str) -> str:
    try:
        import boto3
    except ImportError:
        raise SecretError(
            f"secret {name!r} is in Secrets Manager but boto3 is not installed: "
            "pip install 'driftguard[aws]' or use an *_env reference locally"
        ) from None
    value = boto3.client("secretsmanager").get_secret_value(SecretId=name)
    return str(value.get("SecretString") or "")


class SecretResolver:
    """Resolves `env` and `secret` references. Inject `fetch` and `environ` in tests."""

    def __init__(self, fetch: SecretFetcher | None = None, environ: Mapping[str, str] | None = None) -> None:
        self._fetch = fetch or _SecretsManagerFetch()
        self._environ = environ if environ is not None else os.environ

    def resolve(self, *, env: str | None, secret: str | None, what: str) -> str | None:
        """The value behind whichever reference is set (env wins locally). None if neither is set."""
        if env:
            value = self._environ.get(env)
            if value is not None:
                return value
            if not secret:
                raise SecretError(f"{what}: environment variable {env} is not set; export it or use a secret")
        if secret:
            raw = self._fetch(secret)
            return _password_from(raw)
        return None

    def database_secret(self, secret: str) -> dict[str, Any]:
        """The whole secret as a dict (RDS JSON shape), or {"password": raw} for a plain string."""
        raw = self._fetch(secret)
        try:
            data = json.loads(raw)
        except ValueError:
            return {"password": raw}
        return data if isinstance(data, dict) else {"password": raw}


def _password_from(raw: str) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(data, dict):
        for key in ("password", "value", "url", "secret"):
            if key in data:
                return str(data[key])
    return raw
