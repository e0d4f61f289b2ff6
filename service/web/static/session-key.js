// The API key, kept in this tab's sessionStorage only: never in localStorage, a cookie or a URL,
// so closing the tab forgets it. The report page and GraphiQL share it within a tab.
const STORAGE_NAME = "pomreport.apiKey";

export function apiKey() {
  return sessionStorage.getItem(STORAGE_NAME) ?? "";
}

export function rememberApiKey(value) {
  const key = value.trim();
  if (key) sessionStorage.setItem(STORAGE_NAME, key);
  else sessionStorage.removeItem(STORAGE_NAME);
}

export function authorizationHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}
