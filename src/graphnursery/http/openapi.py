"""The OpenAPI document: quart-schema's, plus what depends on this server's config."""

from __future__ import annotations

from typing import Any

from quart import current_app
from quart_schema import OpenAPIProvider

from ..config import Config
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .schemas import ErrorModel

STATE_KEY = "graphnursery"


class OpenAPI(OpenAPIProvider):
    """quart-schema's document, plus what it cannot say: /metrics answers Prometheus text."""

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        # Limits that come from this server's config, not from the models.
        config: Config = current_app.extensions[STATE_KEY].config
        for name in ("GeneralSubmit", "SeedSubmit"):
            timeout = document["components"]["schemas"][name]["properties"]["timeoutSeconds"]
            timeout["anyOf"][0]["maximum"] = config.max_job_timeout
        for path in document["paths"].values():
            for operation in path.values():
                if "requestBody" in operation:
                    operation["requestBody"]["required"] = True
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "wait":
                        parameter["schema"]["anyOf"][0]["maximum"] = config.max_wait
        metrics = document.get("paths", {}).get("/metrics", {}).get("get")
        if metrics is not None:
            metrics["responses"][200] = {
                "description": "Prometheus text exposition format",
                "content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}},
            }
        return document


def errors(*statuses: int) -> Any:
    """OpenAPI entries for error answers (all share one shape)."""
    return {status: (ErrorModel, None) for status in statuses}


SUBMIT_ERRORS = errors(400, 401, 408, 413, 429, 503)
