"""The service's own pages: the live report page at /, GraphiQL, and the files they load, all
served by the service itself (no CDN)."""
