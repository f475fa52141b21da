// An AnyCable HTTP RPC backend written with @anycable/serverless-js, served by Node's own http
// server: the OCPP channel of the gateway's demo backend (ocppcable/demo.py), for the tests.
//
//   node backend.mjs <bearer key or "">  → prints {"ready":true,"port":N}, then one JSON line
//   per RPC request: {"method":…,"headers":{…},"body":{…}}
import http from "node:http";
import { register } from "node:module";

// serverless-js 0.1.0 is published as an ES module whose own imports name directories
// ("./rpc"), which Node only resolves for CommonJS: resolve them to their index.js
register(
  "data:text/javascript,export async function resolve(s, c, next) { try { return await next(s, c) }" +
    " catch (e) { if (e.code === 'ERR_UNSUPPORTED_DIR_IMPORT') return next(s + '/index.js', c); throw e } }",
);
const { Application, Channel, Status, handler } = await import("@anycable/serverless-js");

const key = process.argv[2] || "";

class OCPPApplication extends Application {
  async connect(handle) {
    const stationId = decodeURIComponent(new URL(handle.env.url).pathname.split("/").pop());
    handle.identifiedBy({ station_id: stationId });
  }
}

function ack(handle, data, payload) {
  handle.transmit({ command: "Ack", id: data.id, payload });
}

function idTagInfo(idTag) {
  return { status: idTag === "TAG-OK" ? "Accepted" : "Invalid" };
}

class OCPPChannel extends Channel {
  transactions = 0;

  async subscribed(handle, params) {
    handle.streamFrom(`ocpp:ev/${params.id}`);
  }

  async boot_notification(handle, params, data) {
    ack(handle, data, { status: "Accepted", currentTime: new Date().toISOString(), interval: 60 });
  }

  async authorize(handle, params, data) {
    ack(handle, data, { idTagInfo: idTagInfo(data.payload.idTag) });
  }

  async start_transaction(handle, params, data) {
    this.transactions += 1;
    ack(handle, data, { transactionId: this.transactions, idTagInfo: idTagInfo(data.payload.idTag) });
  }

  // the default reply: no transmission
  async heartbeat() {}
  async status_notification() {}
  async meter_values() {}
  async stop_transaction() {}
  async ack() {}
  async error() {}
}

const app = new OCPPApplication();
app.registerChannel("OCPPChannel", new OCPPChannel());

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks);
  const method = req.url.split("?")[0].split("/").pop();
  let parsed = null;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {}
  console.log(JSON.stringify({ method, headers: req.headers, body: parsed }));
  if (key && req.headers.authorization !== `Bearer ${key}`) {
    res.writeHead(401).end("Unauthorized");
    return;
  }
  const request = new Request(`http://${req.headers.host}${req.url}`, {
    method: "POST",
    headers: req.headers,
    body,
  });
  let response;
  try {
    response = await handler(request, app);
  } catch (e) {
    response = { status: Status.ERROR, error_msg: String(e) };
  }
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(response));
});

server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ ready: true, port: server.address().port }));
});
process.stdin.on("end", () => process.exit(0)); // the test ended
process.stdin.resume();
