//! The network layer: listener, framing, one task per connection.

pub mod connection;
pub mod frame;
