// GraphiQL on the service's own copies of its files, opening on the report query. The API key
// typed in the bar goes with every request (HTTP header, and the WebSocket's connection_init),
// unless the headers editor sets Authorization itself.
import { apiKey, authorizationHeaders, rememberApiKey } from "./session-key.js";

const keyInput = document.getElementById("api-key");
keyInput.value = apiKey();
keyInput.addEventListener("input", () => rememberApiKey(keyInput.value));

const endpoint = new URL(window.location.href);
endpoint.search = "";
endpoint.hash = "";
const subscriptionEndpoint = new URL(endpoint);
subscriptionEndpoint.protocol = endpoint.protocol === "https:" ? "wss:" : "ws:";

const toolkitFetcher = GraphiQL.createFetcher({
  url: endpoint.toString(),
  subscriptionUrl: subscriptionEndpoint.toString(),
});

function fetcher(parameters, options = {}) {
  const headers = { ...(options.headers ?? {}) };
  const named = Object.keys(headers).some((name) => name.toLowerCase() === "authorization");
  return toolkitFetcher(parameters, {
    ...options,
    headers: named ? headers : { ...authorizationHeaders(), ...headers },
  });
}

const exampleQuery = JSON.parse(document.getElementById("example-query").textContent);

ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: exampleQuery,
    plugins: [GraphiQLPluginExplorer.explorerPlugin()],
    defaultEditorToolsVisibility: true,
    isHeadersEditorEnabled: true,
    // Headers could hold a key; GraphiQL would keep them in localStorage across sessions.
    shouldPersistHeaders: false,
  }),
);
