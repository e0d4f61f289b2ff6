// GraphiQL on the service's own copies of its files, opening on the report query. The API key
// typed in the bar goes with every request (HTTP header, and the WebSocket's connection_init),
// unless the headers editor sets Authorization itself.
import { apiKey, authorizationHeaders, rememberApiKey } from "./session-key.js";

const endpoint = new URL(window.location.href);
endpoint.search = "";
endpoint.hash = "";
const subscriptionEndpoint = new URL(endpoint);
subscriptionEndpoint.protocol = endpoint.protocol === "https:" ? "wss:" : "ws:";

const toolkitFetcher = GraphiQL.createFetcher({
  url: endpoint.toString(),
  subscriptionUrl: subscriptionEndpoint.toString(),
});

// A new fetcher for each key: GraphiQL fetches the schema again when its fetcher changes, so
// docs, completion and the explorer appear once a key is given (the first try had none).
function fetcherForKey() {
  return (parameters, options = {}) => {
    const headers = { ...(options.headers ?? {}) };
    const named = Object.keys(headers).some((name) => name.toLowerCase() === "authorization");
    return toolkitFetcher(parameters, {
      ...options,
      headers: named ? headers : { ...authorizationHeaders(), ...headers },
    });
  };
}

const exampleQuery = JSON.parse(document.getElementById("example-query").textContent);
const explorer = GraphiQLPluginExplorer.explorerPlugin();
const root = ReactDOM.createRoot(document.getElementById("graphiql"));

function render() {
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcherForKey(),
      defaultQuery: exampleQuery,
      plugins: [explorer],
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      // Headers could hold a key; GraphiQL would keep them in localStorage across sessions.
      shouldPersistHeaders: false,
    }),
  );
}

const keyInput = document.getElementById("api-key");
keyInput.value = apiKey();
let typing = null;
keyInput.addEventListener("input", () => {
  rememberApiKey(keyInput.value);
  clearTimeout(typing);
  typing = setTimeout(render, 500); // once the key is typed or pasted, not per keystroke
});
render();
