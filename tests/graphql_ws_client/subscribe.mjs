// Reference graphql-transport-ws client: the `graphql-ws` library's createClient over
// the `ws` WebSocket implementation, subscribed to Threadline's `projectEvents`.
//
//   node subscribe.mjs <ws-url> <token> <projectId> <count> [timeout-seconds]
//
// stdout: one JSON line per received event (the `projectEvents` object as delivered).
// stderr: progress lines; `connected` once the server sent `connection_ack`, then
//         `subscribed` once the `subscribe` message has been written to the socket
//         (the server registers it a moment later).
// Exit status: 0 after <count> events, 1 on timeout, a GraphQL error, a refused
// connection or a subscription that ended early, 2 on bad usage.

import { createClient } from "graphql-ws";
import WebSocket from "ws";

const QUERY = `subscription ProjectEvents($projectId: ID!) {
  projectEvents(projectId: $projectId) {
    sequence
    kind
    occurredAt
    projectId
    payload
    actor { email }
    parameterChange {
      edited { symbol newValue unit version }
      recomputed { symbol oldValue newValue unit version }
      requirements { key oldCompliance newCompliance flipped }
    }
  }
}`;

const [url, token, projectId, countArg, timeoutArg = "20"] = process.argv.slice(2);
const count = Number.parseInt(countArg ?? "", 10);
const timeoutSeconds = Number.parseFloat(timeoutArg);
if (!url || !token || !projectId || !(count > 0) || !(timeoutSeconds > 0)) {
  console.error(
    "usage: node subscribe.mjs <ws-url> <token> <projectId> <count> [timeout-seconds]",
  );
  process.exit(2);
}

const log = (line) => process.stderr.write(`${line}\n`);

// The `ws` WebSocket, noting when graphql-ws puts the `subscribe` message on the wire.
class LoggingWebSocket extends WebSocket {
  send(data, ...rest) {
    const sent = super.send(data, ...rest);
    if (typeof data === "string" && data.includes('"subscribe"')) {
      try {
        if (JSON.parse(data).type === "subscribe") log("subscribed");
      } catch {
        // not JSON: nothing to note
      }
    }
    return sent;
  }
}

const client = createClient({
  url,
  webSocketImpl: LoggingWebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  lazy: false,
  retryAttempts: 0, // a reference check: report failures instead of hiding them
  on: {
    connected: () => log("connected"),
    closed: (event) => log(`closed ${event?.code ?? ""} ${event?.reason ?? ""}`.trim()),
  },
});

let finished = false;
function finish(code, message) {
  if (finished) return;
  finished = true;
  if (message) log(message);
  process.exitCode = code;
  // dispose() closes the socket; the timer only guards against a hung close.
  Promise.resolve(client.dispose()).finally(() => process.exit(code));
  setTimeout(() => process.exit(code), 2000).unref();
}

const timer = setTimeout(
  () => finish(1, `timeout: fewer than ${count} events after ${timeoutSeconds}s`),
  timeoutSeconds * 1000,
);

function describe(err) {
  if (Array.isArray(err)) return JSON.stringify(err); // GraphQL errors
  if (err && typeof err === "object" && "code" in err) {
    return `socket closed ${err.code} ${err.reason ?? ""}`.trim(); // CloseEvent
  }
  return String(err?.message ?? err);
}

async function main() {
  const events = client.iterate({ query: QUERY, variables: { projectId } });
  let received = 0;
  try {
    for await (const result of events) {
      if (result.errors?.length) {
        clearTimeout(timer);
        return finish(1, `error: ${JSON.stringify(result.errors)}`);
      }
      process.stdout.write(`${JSON.stringify(result.data.projectEvents)}\n`);
      received += 1;
      if (received >= count) {
        clearTimeout(timer);
        await events.return?.(); // sends `complete` for the operation
        return finish(0);
      }
    }
  } catch (err) {
    clearTimeout(timer);
    return finish(1, `error: ${describe(err)}`);
  }
  clearTimeout(timer);
  finish(1, `subscription completed after ${received} of ${count} events`);
}

main();
