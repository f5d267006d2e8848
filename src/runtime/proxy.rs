//! The proxy handler: builds the upstream request, retries per `proxy_next_upstream`, streams the response.
