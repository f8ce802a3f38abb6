"""twistd plugin: ``twistd kernelgateway`` runs kgw (the real code lives in kgw.tap)."""

from twisted.application.service import ServiceMaker

kernelgateway = ServiceMaker(
    "kgw kernel gateway",
    "kgw.tap",
    "A Jupyter kernel gateway: kernel REST API and websocket channels",
    "kernelgateway",
)
