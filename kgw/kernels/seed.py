"""The seed notebook: code cells that run in every new kernel before a client gets it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import unquote, urlsplit

import attrs

from kgw.channels.bridge import ChannelBridge
from kgw.channels.gateway_client import KernelExited
from kgw.errors import ConfigError, KernelStartFailed

# How long one seed cell may run.
SEED_CELL_TIMEOUT = 300.0


class SeedFailed(KernelStartFailed):
    """A seed cell raised, or did not finish: the kernel must not be handed out."""


@attrs.frozen
class Seed:
    """A seed notebook's code cells, and the kernelspec it is for ("" when it names none)."""

    kernel_name: str
    cells: tuple[str, ...]

    def applies_to(self, kernel_name: str) -> bool:
        """Seed a kernel only of the notebook's own kernelspec, as jupyter_kernel_gateway."""
        return not self.kernel_name or self.kernel_name == kernel_name


NO_SEED = Seed("", ())


def load_seed(uri: str, named: str = "--seed-uri") -> Seed:
    """The seed notebook at a local path or file: URL; ConfigError if unusable.

    ``named`` is how the user gave it (the flag, or KG_SEED_URI), for the error.
    """
    parsed = urlsplit(uri)
    if parsed.scheme not in ("", "file"):
        raise ConfigError(f"{named} {uri!r}: only local paths and file: URLs are supported")
    path = unquote(parsed.path) if parsed.scheme == "file" else uri
    try:
        with open(path, encoding="utf-8") as f:
            notebook = json.load(f)
    except OSError as e:
        raise ConfigError(f"{named} {uri!r}: cannot read it: {e.strerror}") from None
    except ValueError as e:
        raise ConfigError(f"{named} {uri!r}: not a notebook (invalid JSON: {e})") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise ConfigError(f"{named} {uri!r}: not a notebook (no cells)")
    code = []
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            code.append(text)
    metadata = notebook.get("metadata")
    kernelspec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    name = kernelspec.get("name") if isinstance(kernelspec, dict) else None
    return Seed(name if isinstance(name, str) else "", tuple(code))


async def run_seed(
    bridge: ChannelBridge,
    cells: tuple[str, ...],
    alive: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Run each seed cell in order; raise SeedFailed naming the first cell that fails.

    With ``alive``, a kernel that exits while a cell runs fails it within a second or so.
    """
    for number, code in enumerate(cells, start=1):
        if not code.strip():
            continue
        try:
            reply = await bridge.gateway.execute(code, SEED_CELL_TIMEOUT, alive)
        except KernelExited:
            raise SeedFailed(f"seed cell {number}: the kernel exited while running it") from None
        except TimeoutError:
            raise SeedFailed(
                f"seed cell {number} did not finish within {SEED_CELL_TIMEOUT:.0f}s"
            ) from None
        if reply.get("status") != "ok":
            raise SeedFailed(
                f"seed cell {number} failed: {reply.get('ename', 'error')}: "
                f"{reply.get('evalue', '')}"
            )
