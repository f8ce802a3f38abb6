// @jupyterlab/services' SessionManager against a gateway: start a session, execute through
// its kernel, rename it, shut it down. Prints one JSON line with what it saw.
const { SessionManager, KernelManager, ServerConnection } = require('@jupyterlab/services');

const baseUrl = process.env.JUPYTER_GATEWAY_URL.replace(/\/+$/, '');
const token = process.env.JUPYTER_GATEWAY_AUTH_TOKEN || '';

async function main() {
  const serverSettings = ServerConnection.makeSettings({
    baseUrl,
    wsUrl: baseUrl.replace(/^http/, 'ws'),
    token
  });
  const kernelManager = new KernelManager({ serverSettings });
  const sessions = new SessionManager({ serverSettings, kernelManager });
  const seen = {};
  try {
    await sessions.ready;
    const session = await sessions.startNew({
      path: 'notebooks/first.ipynb',
      name: 'first.ipynb',
      type: 'notebook',
      kernel: { name: 'python3' }
    });
    seen.sessionId = session.id;
    seen.kernelId = session.kernel.id;
    let output = '';
    const future = session.kernel.requestExecute({ code: 'print(6 * 7)' });
    future.onIOPub = msg => {
      if (msg.header.msg_type === 'stream') {
        output += msg.content.text;
      }
    };
    const reply = await future.done;
    seen.status = reply.content.status;
    seen.output = output;
    await session.setPath('notebooks/renamed.ipynb');
    const listed = await SessionAPIList(serverSettings);
    seen.listedPaths = listed.map(s => s.path);
    await session.shutdown();
    seen.afterShutdown = (await SessionAPIList(serverSettings)).length;
  } finally {
    sessions.dispose();
    kernelManager.dispose();
  }
  console.log(JSON.stringify(seen));
}

async function SessionAPIList(serverSettings) {
  const response = await ServerConnection.makeRequest(
    `${serverSettings.baseUrl}api/sessions`, {}, serverSettings
  );
  return response.json();
}

main().catch(err => {
  console.error(err);
  process.exitCode = 1;
});
