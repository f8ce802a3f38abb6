"""/api, /api/kernelspecs and kernelspec resource files."""

from __future__ import annotations

import glob
import importlib.resources
import mimetypes
import os
from typing import Any
from urllib.parse import quote

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.web.iweb import IRequest

import kgw
from kgw.errors import NotFound
from kgw.kernels.registry import KernelRegistry
from kgw.web.app import GatewayApp, json_body

# The OpenAPI document of the REST API, shipped in the package.
OPENAPI = importlib.resources.files("kgw") / "openapi.json"


def kernelspec_model(
    base_url: str, name: str, spec: dict[str, Any], resource_dir: str
) -> dict[str, Any]:
    """jupyter_server's kernelspec model: the spec and the URLs of its resource files."""
    resources: dict[str, str] = {}

    def url(filename: str) -> str:
        return f"{base_url}kernelspecs/{quote(name)}/{quote(filename)}"

    for filename in ("kernel.js", "kernel.css"):
        if os.path.exists(os.path.join(resource_dir, filename)):
            resources[filename] = url(filename)
    for logo in sorted(glob.glob(os.path.join(glob.escape(resource_dir), "logo-*"))):
        filename = os.path.basename(logo)
        resources[os.path.splitext(filename)[0]] = url(filename)
    return {"name": name, "spec": spec, "resources": resources}


def install(app: GatewayApp, registry: KernelRegistry) -> None:
    """Add the metadata and kernelspec routes to ``app``."""
    base_url = app.base_url
    ksm = registry.kernel_spec_manager

    def visible(name: str) -> bool:
        forced = app.config.force_kernel_name
        return not forced or name == forced

    async def api_info(request: IRequest) -> bytes:
        return json_body(request, 200, {"version": kgw.__version__})

    async def list_kernelspecs(request: IRequest) -> bytes:
        specs = {
            name: kernelspec_model(base_url, name, found["spec"], found["resource_dir"])
            for name, found in ksm.get_all_specs().items()
            if visible(name)
        }
        return json_body(
            request, 200, {"default": registry.default_kernel_name, "kernelspecs": specs}
        )

    async def get_kernelspec(request: IRequest, name: str) -> bytes:
        if not visible(name):
            raise NotFound(f"Kernel spec does not exist: {name}")
        spec = registry.kernel_spec(name)
        return json_body(
            request, 200, kernelspec_model(base_url, name, spec.to_dict(), spec.resource_dir)
        )

    async def get_resource(request: IRequest, name: str, resource: str) -> bytes:
        if not visible(name):
            raise NotFound(f"Kernel spec does not exist: {name}")
        root = os.path.realpath(registry.kernel_spec(name).resource_dir)
        path = os.path.realpath(os.path.join(root, resource))
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            raise NotFound(f"Kernel spec {name} has no resource {resource}")
        with open(path, "rb") as f:
            data = f.read()
        kind, _ = mimetypes.guess_type(path)
        request.setHeader(b"Content-Type", (kind or "application/octet-stream").encode())
        return data

    async def openapi(request: IRequest, content_type: bytes) -> bytes:
        # JSON is YAML too, so one document serves both names, as in jupyter_kernel_gateway.
        request.setHeader(b"Content-Type", content_type)
        return OPENAPI.read_bytes()

    async def openapi_json(request: IRequest) -> bytes:
        return await openapi(request, b"application/json")

    async def openapi_yaml(request: IRequest) -> bytes:
        return await openapi(request, b"application/yaml")

    async def status(request: IRequest) -> bytes:
        return json_body(request, 200, registry.metrics.status())

    async def metrics(request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return registry.metrics.exposition()

    app.route("api", ["GET"], api_info)
    open_metrics = app.config.metrics_unauthenticated
    app.route("api/status", ["GET"], status, auth_required=not open_metrics)
    app.route("metrics", ["GET"], metrics, auth_required=not open_metrics)
    # The API description is public, as in jupyter_kernel_gateway.
    app.route("api/swagger.json", ["GET"], openapi_json, auth_required=False)
    app.route("api/swagger.yaml", ["GET"], openapi_yaml, auth_required=False)
    app.route("api/spec.yaml", ["GET"], openapi_yaml, auth_required=False)
    app.route("api/kernelspecs", ["GET"], list_kernelspecs)
    app.route("api/kernelspecs/<name>", ["GET"], get_kernelspec)
    app.route("kernelspecs/<name>/<path:resource>", ["GET"], get_resource)
