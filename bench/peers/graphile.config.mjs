// PostGraphile 5 over pomreport's PostgreSQL database, set up as for production: amber preset,
// connection-filter plugin, default inflection, no GraphiQL, no explain, no schema watching.
// bench/peers/serve.mjs serves it; bench/peers/peers.py starts that with DATABASE_URL and PORT.
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";

const connectionString =
  process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/seedbench";

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset, PostGraphileConnectionFilterPreset],
  pgServices: [
    makePgService({
      connectionString,
      schemas: ["public"],
      // The same number of connections as pomreport's pool (POMREPORT_POOL_SIZE, default 40).
      poolConfig: { max: 40 },
      // No subscriptions are measured: no LISTEN connection.
      pubsub: false,
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.PORT ?? 5678),
    graphqlPath: "/graphql",
    graphiql: false,
    graphqlOverGET: false,
    websockets: false,
    watch: false,
  },
  grafast: { explain: false },
};

export default preset;
