"""The HTTP API's routers, one module per resource; engine.server.app includes them in order."""
