//! The network layer: listener, framing, one task per connection.

pub mod acceptor;
pub mod connection;
pub mod fetch_frame;
pub mod frame;
pub mod idle;
