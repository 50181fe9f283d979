//! Client instructions per call, for `valgrind --tool=callgrind` (see `benches/callgrind.sh`).
//!
//! `instructions serve` runs the JSON server and prints its URL; `instructions MODE N URL`
//! makes 200 warm-up calls and then N sequential calls of MODE (`hyper`, `reqwest`, `sdk`, `sdk-typed`,
//! `sdk-cached`, `sdk-typed-cached`, `sdk-open`, `middleware`, `feign`, `sdk-discovered` (the
//! instance found through the embedded registry), `sdk-versioned` (the same with a version
//! requirement), and `sdk-typed-metrics`: `sdk-typed` with the Prometheus recorder installed) on
//! a current-thread runtime. `feign` always
//! calls `common::FIXED_ADDR` (feignhttp's URL is fixed at compile time); `serve-fixed` serves
//! there. Running it for N and 2N calls and
//! dividing the difference by N cancels start-up and warm-up.

mod common;

use common::Clients;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.as_slice() {
        [serve] if serve == "serve" || serve == "serve-fixed" => rt.block_on(async {
            let addr = if serve == "serve" {
                "127.0.0.1:0"
            } else {
                common::FIXED_ADDR
            };
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
            println!("http://{}", listener.local_addr().expect("addr"));
            axum::serve(listener, common::app()).await.expect("serve");
        }),
        [mode, n, url] => {
            let n: usize = n.parse().expect("N is a number");
            let prometheus = (mode == "sdk-typed-metrics")
                .then(|| sdk::telemetry::Prometheus::install().expect("recorder"));
            let mode = if prometheus.is_some() {
                "sdk-typed"
            } else {
                mode.as_str()
            };
            rt.block_on(async {
                let clients = Clients::new(url).await;
                for round in [200, n] {
                    for _ in 0..round {
                        match mode {
                            "hyper" => drop(std::hint::black_box(clients.hyper_call().await)),
                            "reqwest" => drop(std::hint::black_box(clients.reqwest_call().await)),
                            "sdk" => drop(std::hint::black_box(clients.sdk_call().await)),
                            "sdk-typed" => drop(std::hint::black_box(clients.typed_call().await)),
                            "sdk-cached" => {
                                drop(std::hint::black_box(clients.sdk_cached_call().await))
                            }
                            "sdk-typed-cached" => {
                                drop(std::hint::black_box(clients.typed_cached_call().await))
                            }
                            "sdk-open" => drop(std::hint::black_box(clients.sdk_open_call().await)),
                            "middleware" => {
                                drop(std::hint::black_box(clients.middleware_call().await))
                            }
                            "feign" => drop(std::hint::black_box(clients.feign_call().await)),
                            "sdk-discovered" => {
                                drop(std::hint::black_box(clients.sdk_discovered_call().await))
                            }
                            "sdk-versioned" => {
                                drop(std::hint::black_box(clients.sdk_versioned_call().await))
                            }
                            other => panic!("unknown mode {other}"),
                        }
                    }
                }
            });
        }
        // `cargo bench` runs every bench target; with no arguments there is nothing to do.
        _ => eprintln!(
            "usage: instructions serve | instructions MODE N URL (see benches/callgrind.sh)"
        ),
    }
}
