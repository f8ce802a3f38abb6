"""nbclient runs notebooks on gateway kernels through kgw.client's kernel managers.

The same notebook (stream output, rich display data, an error cell, a comm with binary
buffers) runs on kgw, in both websocket formats and with both manager flavours, and on
jupyter_kernel_gateway from PyPI (installed into a virtualenv on first use); then through
the ``jupyter nbconvert --execute`` and ``jupyter execute`` command lines.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat import NotebookNode
from traitlets.config import Config

from kgw.client import AsyncGatewayKernelManager, GatewayKernelManager
from tests.integration.harness import Gateway, JupyterKernelGateway

BUFFER = b"\x00\x01\xfe\xffbinary"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really a picture").decode()
CELLS = [
    "import sys\nprint('hello from the gateway')\nprint('to stderr', file=sys.stderr)",
    "from IPython.display import HTML, display\n"
    "display(HTML('<b>bold</b>'))\n"
    f"display({{'image/png': '{PNG}', 'text/plain': 'a picture'}}, raw=True)\n"
    "6 * 7",
    "1 / 0",
    "from comm import create_comm\n"
    "state = {'_model_name': 'M', '_model_module': 'm', '_model_module_version': '1'}\n"
    "comm = create_comm(target_name='kgw-test', data={'state': {**state, 'value': None}, "
    f"'buffer_paths': [['value']]}}, buffers=[{BUFFER!r}])",
    "print('after the error')",
]
RUN_TIMEOUT = 120


def make_notebook() -> NotebookNode:
    nb: NotebookNode = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def check_outputs(nb: NotebookNode) -> None:
    """The outputs nbclient wrote into the notebook, cell by cell."""
    stream, display_cell, error, comm, after = (cell.outputs for cell in nb.cells)
    assert [(o.output_type, o.name, o.text) for o in stream] == [
        ("stream", "stdout", "hello from the gateway\n"),
        ("stream", "stderr", "to stderr\n"),
    ]
    html, picture, result = display_cell
    assert (html.output_type, html.data["text/html"]) == ("display_data", "<b>bold</b>")
    assert picture.data == {"image/png": PNG, "text/plain": "a picture"}
    assert (result.output_type, result.data["text/plain"]) == ("execute_result", "42")
    [raised] = error
    assert (raised.output_type, raised.ename) == ("error", "ZeroDivisionError")
    assert raised.traceback
    assert comm == []
    assert [o.text for o in after] == ["after the error\n"]
    states = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    [widget] = states.values()
    [buffer] = widget["buffers"]
    assert buffer["path"] == ["value"]
    assert base64.b64decode(buffer["data"]) == BUFFER
    assert nb.metadata.language_info.name == "python"


def run_notebook(manager: type[Any], url: str, v1: bool, token: str = "") -> NotebookNode:
    config = Config()
    settings = config[manager.__name__]
    settings.url = url
    settings.offer_v1 = v1
    if token:
        settings.auth_token = token
    nb = make_notebook()
    client = NotebookClient(
        nb, kernel_manager_class=manager, allow_errors=True, timeout=RUN_TIMEOUT, config=config
    )
    client.execute()
    return nb


def opened(gateway: Gateway, wire_format: str) -> int:
    return sum(f"websocket opened ({wire_format})" in line for line in gateway.lines)


# --- kgw ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manager", "v1"),
    [
        (GatewayKernelManager, True),
        (GatewayKernelManager, False),
        (AsyncGatewayKernelManager, True),
    ],
    ids=["blocking-v1", "blocking-json", "async-v1"],
)
def test_nbclient_runs_a_notebook_on_kgw(gateway: Gateway, manager: type[Any], v1: bool) -> None:
    wire_format = "v1" if v1 else "json"
    before = opened(gateway, wire_format)
    nb = run_notebook(manager, gateway.url, v1)
    check_outputs(nb)
    assert opened(gateway, wire_format) == before + 1
    assert gateway.request("GET", "api/kernels").json() == []


# --- jupyter_kernel_gateway ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=["v1", "json"], ids=["accepts-v1", "json-only"])
def jupyter_kernel_gateway(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A jupyter_kernel_gateway whose python3 kernelspec runs this ipykernel: (URL, format).

    One accepts the v1 subprotocol (its default), one is configured to refuse it.
    """
    wire_format: str = request.param
    args = [] if wire_format == "v1" else ["--ZMQChannelsWebsocketConnection.kernel_ws_protocol="]
    with JupyterKernelGateway(*args) as gateway:
        yield gateway.url, wire_format


def test_nbclient_runs_the_same_notebook_on_jupyter_kernel_gateway(
    jupyter_kernel_gateway: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, wire_format = jupyter_kernel_gateway
    caplog.set_level(logging.DEBUG, logger="kgw.client")
    check_outputs(run_notebook(GatewayKernelManager, url, v1=True))
    # The client offered v1 both times; it speaks JSON where the gateway refused it.
    assert f"channels open ({wire_format})" in caplog.text


# --- the command lines --------------------------------------------------------------------------


def jupyter(*args: str, gateway: Gateway, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``jupyter ...`` as a reader of docs/client.md would, the gateway in the environment."""
    env = {**os.environ, "JUPYTER_GATEWAY_URL": gateway.url}
    if gateway.token:
        env["JUPYTER_GATEWAY_AUTH_TOKEN"] = gateway.token
    command = [str(Path(sys.executable).parent / "jupyter"), *args]
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def token_gateway() -> Iterator[Gateway]:
    with Gateway("--list-kernels", token="cli-token") as gw:
        yield gw
    assert gw.leftover_kernels() == []


def test_jupyter_nbconvert_execute(token_gateway: Gateway, tmp_path: Path) -> None:
    nbformat.write(make_notebook(), tmp_path / "analysis.ipynb")
    before = opened(token_gateway, "v1")
    jupyter(
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--allow-errors",
        "--NotebookClient.kernel_manager_class=kgw.client.GatewayKernelManager",
        "--output",
        "executed.ipynb",
        "analysis.ipynb",
        gateway=token_gateway,
        cwd=tmp_path,
    )
    check_outputs(nbformat.read(tmp_path / "executed.ipynb", as_version=4))
    assert opened(token_gateway, "v1") == before + 1
    assert token_gateway.request("GET", "api/kernels").json() == []


@pytest.mark.xfail(
    strict=True,
    reason="nbclient 0.11 offers no way: NbClientApp.run_notebook (nbclient/cli.py) builds "
    "NotebookClient(nb, timeout=..., startup_timeout=..., skip_cells_with_tag=..., "
    "allow_errors=..., kernel_name=..., resources=...) without parent=self or config=self.config, "
    "and NbClientApp has no kernel_manager_class trait, so neither --NotebookClient.* / "
    "--NbClientApp.* options nor a config file reach it and a local kernel runs",
)
def test_jupyter_execute(token_gateway: Gateway, tmp_path: Path) -> None:
    nbformat.write(make_notebook(), tmp_path / "analysis.ipynb")
    before = opened(token_gateway, "v1")
    jupyter(
        "execute",
        "--inplace",
        "--allow-errors",
        "--NotebookClient.kernel_manager_class=kgw.client.GatewayKernelManager",
        "analysis.ipynb",
        gateway=token_gateway,
        cwd=tmp_path,
    )
    check_outputs(nbformat.read(tmp_path / "analysis.ipynb", as_version=4))
    assert opened(token_gateway, "v1") == before + 1
