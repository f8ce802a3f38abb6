"""Run code on a gateway kernel with kgw.client: output, input(), an interrupt, shutdown.

    JUPYTER_GATEWAY_URL=http://127.0.0.1:8888 python gateway_script.py

Set JUPYTER_GATEWAY_AUTH_TOKEN too when the gateway has a token.
"""

from kgw.client import GatewayKernelManager

km = GatewayKernelManager()  # the gateway in JUPYTER_GATEWAY_URL (token: ..._AUTH_TOKEN)
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.execute_interactive("for i in range(3): print(i)", timeout=60)  # prints output as it comes
kc.execute_interactive("print('hello', input())", stdin_hook=lambda _: kc.input("Ada"), timeout=60)
interrupt = lambda msg: msg["msg_type"] == "stream" and km.interrupt_kernel()  # noqa: E731
kc.execute_interactive("print('looping')\nwhile True: pass", output_hook=interrupt, timeout=60)
km.shutdown_kernel()
