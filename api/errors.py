"""One place that turns errors into answers: typed service errors to their status with the
message, validation errors to a 422 that names each field (as the client spelled it) and why."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from core.errors import Rejected, ServiceError

Schema = dict[str, Any]


def _resolve(node: Schema, defs: Schema) -> Schema:
    while isinstance(node, dict) and "$ref" in node:
        node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
    return node


def _union(node: Schema) -> list[Schema]:
    found: list[Schema] = node.get("oneOf") or node.get("anyOf") or []
    return found


def _members(node: Schema, defs: Schema) -> list[Schema]:
    """The alternatives of a union, nested unions flattened."""
    found: list[Schema] = []
    for member in _union(node):
        member = _resolve(member, defs)
        found += _members(member, defs) if _union(member) else [member]
    return found


def _mapping(node: Schema, defs: Schema) -> dict[str, str]:
    mapping = dict(node.get("discriminator", {}).get("mapping", {}))
    for member in _union(node):
        mapping |= _mapping(_resolve(member, defs), defs)
    return mapping


def _member_for(node: Schema, tag: Any, defs: Schema) -> Schema | None:
    """The member of a discriminated union that `tag` names, if it names one."""
    mapping = _mapping(node, defs)
    if tag in mapping:
        return _resolve({"$ref": mapping[tag]}, defs)
    for member in _members(node, defs):
        for field in member.get("properties", {}).values():
            if tag == field.get("const") or tag in field.get("enum", ()):
                return member
    return None


def _nested(node: Schema) -> bool:
    """Whether a value of this schema can hold fields or items (an error can be inside it)."""
    return any(key in node for key in ("properties", "items", "oneOf", "anyOf", "$ref"))


def field_path(loc: list[Any], schema: Schema) -> list[Any]:
    """`loc` without pydantic's union tags ('train', 'sgd', 'constrained-float'): only the
    fields and indexes of the body as the client sent it."""
    defs = schema.get("$defs", {})
    node = _resolve(schema, defs)
    path: list[Any] = []
    for i, part in enumerate(loc):
        members = _members(node, defs)
        if members and isinstance(part, int):  # an index is never a tag: into the list
            node = next((m for m in members if "items" in m), node)
        elif members:
            last = i + 1 == len(loc)
            props = [
                m
                for m in members
                if part in m.get("properties", {})
                and (last or _nested(_resolve(m["properties"][part], defs)))
            ]
            if props:
                node = props[0]
            else:
                chosen = _member_for(node, part, defs)
                if chosen is None:  # a tag pydantic made up; the next part says where we are
                    following = loc[i + 1] if i + 1 < len(loc) else None
                    fits = [m for m in members if following in m.get("properties", {})]
                    chosen = fits[0] if fits else node  # or it is a tag of this union too
                node = chosen
                continue
        path.append(part)
        if isinstance(part, int):
            node = _resolve(node.get("items", {}), defs)
        else:
            node = _resolve(node.get("properties", {}).get(part, {}), defs)
    return path


def _body_schema(request: Request) -> Schema:
    route = request.scope.get("route")
    cache: dict[int, Schema] = request.app.state.body_schemas
    if id(route) not in cache:
        body = route.body_field if isinstance(route, APIRoute) else None
        annotation = body.field_info.annotation if body is not None else None
        cache[id(route)] = TypeAdapter(annotation).json_schema() if annotation is not None else {}
    return cache[id(route)]


def _answer(detail: list[dict[str, Any]]) -> JSONResponse:
    message = "; ".join(
        f"{'.'.join(str(p) for p in d['loc'][1:]) or d['loc'][0]}: {d['msg']}" for d in detail
    )
    return JSONResponse(status_code=422, content={"message": message, "detail": detail})


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    """422 naming each field and the reason, in FastAPI's shape plus one readable line."""
    assert isinstance(error, RequestValidationError)
    schema = _body_schema(request)
    detail = []
    for item in error.errors():
        loc = list(item.get("loc", ()))
        if loc and loc[0] == "body" and schema:
            loc = ["body", *field_path(loc[1:], schema)]
        msg = str(item.get("msg", "")).removeprefix("Value error, ")
        detail.append({"loc": loc, "msg": msg, "type": item.get("type")})
    return _answer(detail)


async def service_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    if isinstance(error, Rejected):
        return _answer(
            [
                {"loc": ["body", *loc], "msg": why, "type": "limit_exceeded"}
                for loc, why in error.problems
            ]
        )
    return JSONResponse(
        status_code=error.status, content={"detail": error.message}, headers=error.headers
    )


def install(app: FastAPI) -> None:
    app.state.body_schemas = {}
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ServiceError, service_error)
