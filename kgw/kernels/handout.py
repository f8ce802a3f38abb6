"""Handing a kernel from the env pool to a request that carries an ``env``.

jupyter_server's GatewayClient sends an ``env`` with every start request (KERNEL_USERNAME,
KERNEL_WORKING_DIR, its other KERNEL_* variables), and a kernel started for such a request
gets only PATH, the KG_ENV_PROCESS_WHITELIST variables and the request's variables. A kernel
of the env pool was started with exactly that environment minus the request's own variables;
when it is handed out, those are set in the running kernel, so that the client sees what a
kernel started for it would have: ``os.environ`` holds the same variables, and a restart
starts the new process with them.

Setting variables in a running kernel needs code in the kernel's language; kgw knows how for
Python kernels (ipykernel), and a request for a kernelspec of another language gets a kernel
started for it. What such a kernel read from its environment while it started (before the
request's variables existed) it read without them: the seed notebook too.
"""

from __future__ import annotations

from collections.abc import Mapping

# How long setting the variables in a pooled kernel may take before kgw starts a new one.
APPLY_TIMEOUT = 30.0

LANGUAGES = frozenset({"python"})


def can_apply(language: str) -> bool:
    """Whether kgw can set variables in a running kernel of this kernelspec language."""
    return language.lower() in LANGUAGES


def changes(base: Mapping[str, str], target: Mapping[str, str]) -> dict[str, str]:
    """The variables to set so that a kernel started with ``base`` has ``target``."""
    return {name: value for name, value in target.items() if base.get(name) != value}


def removed(base: Mapping[str, str], target: Mapping[str, str]) -> list[str]:
    """Variables of ``base`` that ``target`` does not have (none for kgw's own rules)."""
    return sorted(name for name in base if name not in target)


def python_code(to_set: Mapping[str, str], to_unset: list[str]) -> str:
    """Python that sets and unsets the variables, leaving no name behind in the kernel."""
    return (
        "import os as _kgw_os\n"
        f"_kgw_os.environ.update({dict(to_set)!r})\n"
        f"for _kgw_name in {list(to_unset)!r}:\n"
        "    _kgw_os.environ.pop(_kgw_name, None)\n"
        "del _kgw_os\n"
        "_kgw_name = None\n"
        "del _kgw_name\n"
    )
