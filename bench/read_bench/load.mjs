// One load-generator process for one measured run (autocannon, programmatic).
// argv[2]: a JSON file {url, headers, bodies: [string], connections, duration, warmup}.
// Cycles through `bodies` (e.g. 1,000 different parameter ids). Prints one JSON line.
import { readFileSync } from "node:fs";
import autocannon from "autocannon";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));

function run(duration) {
  let i = 0;
  return autocannon({
    url: cfg.url,
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", ...cfg.headers },
    connections: cfg.connections,
    pipelining: 1,
    timeout: 120,
    duration,
    requests: [
      {
        setupRequest: (req) => {
          req.body = cfg.bodies[i++ % cfg.bodies.length];
          return req;
        },
      },
    ],
  });
}

if (cfg.warmup > 0) await run(cfg.warmup);
const r = await run(cfg.duration);
console.log(
  JSON.stringify({
    rps: r.requests.average,
    requests: r.requests.total,
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    mean: r.latency.average,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    throughputMBps: r.throughput.average / 1e6,
  }),
);
