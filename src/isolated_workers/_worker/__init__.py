"""The worker side: the launcher, the session with the host, the server."""
