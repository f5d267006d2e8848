//! Upstream groups at run time: balancers (every nginx method), peer state and passive health,
//! keepalive connection pools.
