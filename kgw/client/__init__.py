"""A Python client for Jupyter kernel gateways (kgw, jupyter_kernel_gateway, jupyter_server).

``GatewayKernelManager`` and ``AsyncGatewayKernelManager`` are jupyter_client kernel managers
whose kernels run on a gateway; their ``client()`` speaks to the kernel over one channels
websocket. This package imports no Twisted.
"""

from kgw.client.channels import AsyncGatewayKernelClient, GatewayKernelClient
from kgw.client.errors import (
    ChannelsStopped,
    ConnectionLost,
    GatewayError,
    GatewayHTTPError,
    KernelDied,
)
from kgw.client.manager import AsyncGatewayKernelManager, GatewayKernelManager
from kgw.client.settings import GatewaySettings, RetryPolicy

__all__ = [
    "AsyncGatewayKernelClient",
    "AsyncGatewayKernelManager",
    "ChannelsStopped",
    "ConnectionLost",
    "GatewayError",
    "GatewayHTTPError",
    "GatewayKernelClient",
    "GatewayKernelManager",
    "GatewaySettings",
    "KernelDied",
    "RetryPolicy",
]
