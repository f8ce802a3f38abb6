// Start a kernel on a kgw gateway, run print("Hello world!"), print its output, shut down.
//
//   npm install
//   JUPYTER_GATEWAY_URL=http://127.0.0.1:8888 node node_client.js
//
// Set JUPYTER_GATEWAY_AUTH_TOKEN when the gateway has a token (KG_AUTH_TOKEN).
// KernelManager polls GET /api/kernels, so run the gateway with KG_LIST_KERNELS=True.

const { KernelManager, ServerConnection } = require('@jupyterlab/services');

const baseUrl = (process.env.JUPYTER_GATEWAY_URL || 'http://127.0.0.1:8888').replace(/\/+$/, '');
const token = process.env.JUPYTER_GATEWAY_AUTH_TOKEN || '';

async function main() {
  // fetch, Request and Headers are global in Node 18 and later. In Node,
  // @jupyterlab/services 7 uses its own dependency `ws` as the WebSocket class.
  const serverSettings = ServerConnection.makeSettings({
    baseUrl,
    wsUrl: baseUrl.replace(/^http/, 'ws'), // http -> ws, https -> wss
    token
  });
  const manager = new KernelManager({ serverSettings });
  try {
    // Settles after the manager's first GET /api/kernels, whether it worked or not.
    await manager.ready;
    const kernel = await manager.startNew({ name: 'python3' });
    console.error(`started kernel ${kernel.id} (${kernel.name})`);
    try {
      const future = kernel.requestExecute({ code: 'print("Hello world!")' });
      future.onIOPub = msg => {
        if (msg.header.msg_type === 'stream') {
          process.stdout.write(msg.content.text);
        }
      };
      // Resolves after both the execute_reply and the kernel's "idle" status.
      const reply = await future.done;
      console.error(`execute_reply status: ${reply.content.status}`);
    } finally {
      await kernel.shutdown();
      console.error(`shut down kernel ${kernel.id}`);
    }
  } finally {
    manager.dispose(); // stops the polling timer so Node can exit
  }
}

main().catch(err => {
  console.error(err);
  process.exitCode = 1;
});
