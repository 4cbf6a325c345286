//! rvpp's packet engine: buffers, vectors, the node graph, nodes and tables. No I/O lives here.
pub mod fib;
pub mod rcu;
