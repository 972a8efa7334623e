"""The OpenAPI document, truthful about limits that come from settings: a job's epochs and
batch sizes have the maxima this service was started with."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from core.kinds import KINDS
from core.settings import Settings


def _cap(schema: dict[str, Any], maximum: int) -> None:
    """Set `maximum` on every integer in a field's schema (the value, and a list's items)."""
    if schema.get("type") == "integer":
        schema["maximum"] = min(schema.get("maximum", maximum), maximum)
    for key in ("anyOf", "oneOf", "allOf"):
        for member in schema.get(key, []):
            _cap(member, maximum)
    if isinstance(schema.get("items"), dict):
        _cap(schema["items"], maximum)


def install(app: FastAPI, settings: Settings) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.get("components", {}).get("schemas", {})
            for kind in KINDS.values():
                bounds = kind.spec.settings_bounds(settings)
                model = components.get(kind.spec.__name__, {})
                for field, maximum in bounds.items():
                    _cap(model.get("properties", {}).get(field, {}), maximum)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
