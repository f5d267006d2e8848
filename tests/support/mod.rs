pub mod backend;
pub mod client;
pub mod nginx;
