// One autocannon load against a GraphQL endpoint, for bench/peers/peers.py.
//
//   node load.mjs '{"url": "...", "body": "{...}", "connections": 32, "duration": 15}'
//   node load.mjs '{"url": "...", "body": "{...}", "connections": 1, "amount": 200}'
//
// Prints one JSON object on stdout: every response's latency in ms (autocannon's own histogram
// keeps whole milliseconds only), and the responses counted by what they were: 2xx without
// "errors" in the body (ok), 2xx with "errors" (errorBodies), other statuses (non2xx), and
// connection errors and timeouts.
import autocannon from "autocannon";

const options = JSON.parse(process.argv[2]);
const counts = { ok: 0, errorBodies: 0, non2xx: 0 };
const statuses = {};
const failedSamples = {}; // the first failed response of each status, to say why
const latenciesMs = [];

const instance = autocannon(
  {
    url: options.url,
    connections: options.connections,
    pipelining: 1,
    ...(options.amount ? { amount: options.amount } : { duration: options.duration }),
    timeout: 30,
    requests: [
      {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: options.body,
        // Sees status and body together: a GraphQL error comes back as 200 with "errors".
        onResponse: (status, body) => {
          statuses[status] = (statuses[status] ?? 0) + 1;
          const failed = status < 200 || status >= 300 || body.includes('"errors"');
          if (status < 200 || status >= 300) counts.non2xx += 1;
          else if (failed) counts.errorBodies += 1;
          else counts.ok += 1;
          if (failed && !(status in failedSamples)) failedSamples[status] = body.slice(0, 600);
        },
      },
    ],
  },
  (error, result) => {
    if (error) {
      console.error(error);
      process.exit(1);
    }
    process.stdout.write(
      JSON.stringify({
        ...counts,
        statuses,
        failedSamples,
        responses: latenciesMs.length,
        connectionErrors: result.errors,
        timeouts: result.timeouts,
        // autocannon rounds its own duration to whole ticks; the dates are exact to the ms.
        durationSeconds: (result.finish - result.start) / 1000,
        start: result.start,
        finish: result.finish,
        latenciesMs,
      }) + "\n",
    );
  },
);
instance.on("response", (_client, _status, _bytes, responseTimeMs) => {
  latenciesMs.push(responseTimeMs);
});
