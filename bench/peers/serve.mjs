// Serve graphile.config.mjs with grafserv's node adaptor on 127.0.0.1:$PORT, in this process
// (no workers), so the benchmark reads this process's CPU time.
import { createServer } from "node:http";

import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";

import preset from "./graphile.config.mjs";

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.keepAliveTimeout = 60_000; // autocannon keeps its connections open between requests
server.once("listening", () => {
  console.log(`PostGraphile listening on http://127.0.0.1:${preset.grafserv.port}/graphql`);
});
await serv.addTo(server);
server.listen(preset.grafserv.port, preset.grafserv.host);

const stop = async () => {
  server.close();
  await pgl.release();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
