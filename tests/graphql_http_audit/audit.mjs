#!/usr/bin/env node
// Audit a GraphQL endpoint against the GraphQL-over-HTTP spec with graphql-http.
//
//   node audit.mjs http://127.0.0.1:8000/graphql
//
// Prints every audit result, then one summary line:
//   SUMMARY {"ok":N,"notice":N,"warn":N,"error":N}
// Exit status: 0 when no audit result is an "error" (warnings and notices are
// allowed but listed), 1 when any is, 2 on bad usage or a fatal failure.
import { auditServer } from 'graphql-http';

const TIMEOUT_MS = 10_000;

async function main() {
  const url = process.argv[2];
  if (!url || process.argv.length > 3) {
    console.error('usage: node audit.mjs <graphql endpoint URL>');
    return 2;
  }
  try {
    new URL(url);
  } catch {
    console.error(`not a URL: ${url}`);
    return 2;
  }

  const fetchFn = (input, init = {}) =>
    fetch(input, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
  const results = await auditServer({ url, fetchFn });

  const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
  const byStatus = { notice: [], warn: [], error: [] };
  for (const result of results) {
    counts[result.status] += 1;
    if (result.status === 'ok') {
      console.log(`ok     ${result.id} ${result.name}`);
      continue;
    }
    byStatus[result.status].push(result);
    let detail = '';
    try {
      detail = ` [HTTP ${result.response.status} ${result.response.headers.get('content-type') ?? ''}]`;
    } catch {
      // the response may be unavailable; the reason says enough
    }
    console.log(`${result.status.padEnd(6)} ${result.id} ${result.name}: ${result.reason}${detail}`);
  }

  for (const status of ['notice', 'warn', 'error']) {
    if (byStatus[status].length === 0) continue;
    console.log(`\n${status}s (${byStatus[status].length}):`);
    for (const result of byStatus[status]) {
      console.log(`  - ${result.id} ${result.name}`);
    }
  }
  console.log(`\n${results.length} audits against ${url}`);
  console.log(`SUMMARY ${JSON.stringify(counts)}`);
  return counts.error > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('audit failed:', err);
    process.exit(2);
  },
);
