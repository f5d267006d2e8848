//! Listeners, accept loop, the client-side HTTP/1.1 connection, limits and timeouts.
