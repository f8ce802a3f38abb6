"""kgw: a Jupyter kernel gateway built on Twisted."""

from setuptools import setup
from setuptools.command.editable_wheel import editable_wheel

# What kgw.client imports (kgw.channels.wire, which it shares, needs only the standard library).
CLIENT_REQUIRES = [
    "jupyter_client>=8",
    "jupyter_core>=5.1",  # jupyter_core.utils.run_sync
    "traitlets>=5.3",
    "websockets>=15",  # websockets.asyncio.client.connect(proxy=...)
    "pyzmq>=25",  # the kernelspec relay binds a connection file's ports
]


class EditableWithPlugins(editable_wheel):
    """Editable installs put the project root on sys.path with a static .pth file.

    twistd finds plugins by scanning sys.path for twisted/plugins/; the import hook that
    PEP 660 editable installs use by default hides ours. This is the same as
    ``--config-settings editable_mode=compat``, made the default.
    """

    def finalize_options(self) -> None:
        self.mode = self.mode or "compat"
        super().finalize_options()


# The distribution's name on PyPI. "kgw" there is an unrelated project (Knowledge Graph
# Workflows): no install command may name it. The import package stays `kgw`.
DISTRIBUTION = "kgw-kernel-gateway"


setup(
    name=DISTRIBUTION,
    version="0.1.0",
    description="A Jupyter kernel gateway on Twisted: REST kernel CRUD and websocket channels",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.11",
    packages=[
        "kgw",
        "kgw.web",
        "kgw.channels",
        "kgw.kernels",
        "kgw.client",
        "twisted.plugins",
    ],
    package_data={"twisted.plugins": ["kgw_plugin.py"], "kgw": ["openapi.json"]},
    # The plain package is the client (kgw.client imports no Twisted); the server is an extra.
    install_requires=CLIENT_REQUIRES,
    extras_require={
        # Same as the plain package: `pip install 'kgw-kernel-gateway[client]'` reads as it works.
        "client": CLIENT_REQUIRES,
        # The gateway: `pip install 'kgw-kernel-gateway[gateway]' && twistd -n kernelgateway`.
        "gateway": [
            "twisted[tls]>=24.3",
            "autobahn>=23.6",
            "txzmq>=1.0",
            "pyzmq>=25",
            "klein>=23.5",
            "service_identity>=21.1",
            "ipykernel>=6.25",
            "attrs>=23.1",
            "prometheus_client>=0.17",
        ],
        "test": [
            "kgw-kernel-gateway[gateway]",
            "pytest>=8",
            "pytest-timeout>=2.3",
            "coverage>=7",
            "hypothesis>=6.100",
            "treq>=23.11",
            "requests>=2.28",
            "nbclient>=0.10",
            "nbformat>=5.9",
            "nbconvert>=7",
            "cryptography",  # the TLS tests make their certificates
            "openapi-spec-validator>=0.7",
            "openapi-schema-validator>=0.6",
            "sphinx>=8",
            "myst-parser>=4",
            "psutil>=5.9",
            "jupyter_server>=2.14",
            "mypy>=1.10",
            "mypy-zope>=1.0",
            "ruff>=0.6",
        ],
    },
    cmdclass={"editable_wheel": EditableWithPlugins},
    classifiers=[
        "Framework :: Twisted",
        "Framework :: Jupyter",
        "Programming Language :: Python :: 3.11",
    ],
)
