//! Server selection (listen address, then Host against server_name) and location matching.
