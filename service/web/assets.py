"""Third-party browser files GraphiQL needs, pinned in vendor/package-lock.json: `make install`
fetches them from the npm registry and copies them into service/web/vendor, and the service
serves them from there, so GraphiQL works on a network without internet access."""

from __future__ import annotations

from pathlib import Path

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"  # served as they are, under /static
TEMPLATES = WEB / "templates"  # the pages, served by their routes with their headers
VENDOR = WEB / "vendor"

# Served name -> the file in vendor/node_modules it is copied from.
VENDOR_FILES: dict[str, str] = {
    "react.production.min.js": "react/umd/react.production.min.js",
    "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
    "graphiql.min.js": "graphiql/graphiql.min.js",
    "graphiql.min.css": "graphiql/graphiql.min.css",
    "plugin-explorer.umd.js": "@graphiql/plugin-explorer/dist/index.umd.js",
    "plugin-explorer.css": "@graphiql/plugin-explorer/dist/style.css",
}
# Their licences travel with them.
VENDOR_LICENSES: dict[str, str] = {
    "LICENSE.react.txt": "react/LICENSE",
    "LICENSE.react-dom.txt": "react-dom/LICENSE",
    "LICENSE.graphiql.txt": "graphiql/LICENSE",
}  # @graphiql/plugin-explorer ships no licence file; its package.json says MIT.


def missing_vendor_files(folder: Path = VENDOR) -> list[str]:
    """The vendored files not installed in folder (empty when GraphiQL can load)."""
    return [name for name in VENDOR_FILES if not (folder / name).is_file()]
