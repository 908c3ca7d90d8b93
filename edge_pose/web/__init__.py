"""The built-in web view: page, stream, status API, events and metrics over HTTP (docs/web.md)."""
