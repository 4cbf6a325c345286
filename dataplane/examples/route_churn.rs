//! Control-plane cost of API route adds and deletes, for callgrind:
//!   cargo build --release -p rvpp-dataplane --example route_churn
//!   valgrind --tool=callgrind --toggle-collect='route_churn::churn' target/release/examples/route_churn
//! `churn` adds 20 000 IPv4 /32 routes through one next hop, then deletes them: the
//! instruction count divided by 40 000 is the cost of one route add or delete in the
//! forwarding writer (the binary API's decoding is not in it).
use rvpp_dataplane::forwarding::{Forwarding, Path, Prefix};
use rvpp_dataplane::tables::Shared;

const ROUTES: u32 = 20_000;

#[inline(never)]
fn churn(f: &mut Forwarding, path: Path) {
    let base = 0xc613_0000u32;
    for i in 0..ROUTES {
        f.route_add(0, Prefix::V4(base + i, 32), vec![path])
            .expect("add");
    }
    for i in 0..ROUTES {
        f.route_del(0, Prefix::V4(base + i, 32)).expect("del");
    }
}

fn main() {
    let mut f = Forwarding::new(Shared::new());
    let sw = f
        .interface_add("tap0", "tap", [2, 0, 0, 0, 0, 1], false, 1500)
        .expect("interface");
    f.address_add(sw, Prefix::V4(0xc612_0001, 24))
        .expect("address");
    let path = Path::via("198.18.0.2".parse().expect("ip"), Some(sw));
    churn(&mut f, path);
    println!("{} routes added and deleted", ROUTES);
}
