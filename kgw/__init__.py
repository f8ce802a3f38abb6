"""kgw: a Jupyter kernel gateway on Twisted."""

__version__ = "0.1.0"
