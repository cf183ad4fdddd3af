//! The tokio bridge (`loom::compat::tokio`, feature `tokio`) with real
//! tokio-bound clients — `reqwest` against a local HTTP server, `redis`
//! against a `redis-server` the test starts — plus its cancellation,
//! deadlines, panics, signal mask and thread count, and a loom
//! `SendJoinHandle` awaited from a tokio runtime.
//!
//! Every runtime here asks for `TOKIO_THREADS` bridge threads, so the
//! shared background runtime has that many whichever test starts it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use loom::compat::tokio as bridge;

const TOKIO_THREADS: usize = 2;

fn runtime(threads: usize) -> loom::Runtime {
    loom::Runtime::builder()
        .threads(threads)
        .fibers(64)
        .tokio_threads(TOKIO_THREADS)
        .build()
        .expect("build a runtime")
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits (on the fiber) up to a second for `flag`.
fn eventually(flag: &AtomicBool) -> bool {
    let until = Instant::now() + Duration::from_secs(1);
    while !flag.load(Ordering::SeqCst) {
        if Instant::now() > until {
            return false;
        }
        loom::time::sleep(Duration::from_millis(1)).unwrap();
    }
    true
}

#[test]
fn tokio_futures_run_on_the_bridge() {
    runtime(1).run(|| {
        let got = bridge::block_on(async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let task = tokio::spawn(async { 20 });
            task.await.unwrap() + 22
        })
        .unwrap();
        assert_eq!(got, 42);
        // Many fibers at once, each parked until its own task is done.
        let fibers: Vec<_> = (0..100u64)
            .map(|i| {
                loom::spawn(move || {
                    bridge::block_on(async move {
                        tokio::time::sleep(Duration::from_millis(i % 5)).await;
                        i * 2
                    })
                    .unwrap()
                })
            })
            .collect();
        let sum: u64 = fibers.into_iter().map(|f| f.join().unwrap()).sum();
        assert_eq!(sum, 99 * 100);
        assert_eq!(
            bridge::handle().unwrap().metrics().num_workers(),
            TOKIO_THREADS
        );
    });
    // Outside a runtime the calling thread blocks.
    assert_eq!(bridge::block_on(async { 5 }).unwrap(), 5);
}

#[test]
fn tokio_threads_is_validated() {
    for bad in [0, loom::compat::tokio::MAX_THREADS + 1] {
        let error = loom::Runtime::builder()
            .tokio_threads(bad)
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
    }
}

#[test]
fn cancelling_the_fiber_aborts_the_task() {
    runtime(1).run(|| {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(Arc::clone(&dropped));
        let waiter = loom::spawn(move || {
            bridge::block_on(async move {
                let _flag = flag;
                tokio::time::sleep(Duration::from_secs(60)).await;
            })
        });
        loom::time::sleep(Duration::from_millis(5)).unwrap();
        waiter.cancel();
        let error = waiter.join().unwrap().unwrap_err();
        assert!(loom::fiber::is_cancelled(&error), "{error}");
        assert!(eventually(&dropped), "the tokio task was not aborted");
        // A cancelled fiber does not even start a task.
        let started = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&started);
        let fiber = loom::spawn(move || {
            bridge::block_on(async move { seen.store(true, Ordering::SeqCst) })
        });
        fiber.cancel();
        assert!(loom::fiber::is_cancelled(
            &fiber.join().unwrap().unwrap_err()
        ));
        loom::time::sleep(Duration::from_millis(5)).unwrap();
        assert!(!started.load(Ordering::SeqCst));
    });
}

#[test]
fn the_call_tree_deadline_aborts_the_task() {
    runtime(1).run(|| {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(Arc::clone(&dropped));
        let start = Instant::now();
        let result = loom::time::with_timeout(Duration::from_millis(20), || {
            bridge::block_on(async move {
                let _flag = flag;
                tokio::time::sleep(Duration::from_secs(60)).await;
            })
        });
        assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(eventually(&dropped), "the tokio task was not aborted");
        // A task that finishes in time is unaffected.
        let quick = loom::time::with_timeout(Duration::from_secs(5), || {
            bridge::block_on(async { tokio::time::sleep(Duration::from_millis(1)).await })
        });
        quick.unwrap();
    });
}

#[test]
fn a_panicking_task_panics_the_fiber() {
    runtime(1).run(|| {
        let caught = std::panic::catch_unwind(|| {
            bridge::block_on(async {
                tokio::task::yield_now().await;
                panic!("boom in tokio");
            })
        });
        assert_eq!(
            caught.unwrap_err().downcast_ref::<&str>(),
            Some(&"boom in tokio")
        );
        assert_eq!(bridge::block_on(async { 1 }).unwrap(), 1);
    });
}

/// Whether the calling thread blocks SIGTERM and SIGINT.
fn blocks_catchable_signals() -> bool {
    // SAFETY: a zeroed sigset_t is a valid value for sigemptyset/
    // pthread_sigmask to fill in; a null new set only reads the mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set),
            0
        );
        libc::sigismember(&set, libc::SIGTERM) == 1 && libc::sigismember(&set, libc::SIGINT) == 1
    }
}

#[cfg(target_os = "linux")]
#[test]
fn the_bridge_threads_block_loom_signals() {
    runtime(1).run(|| {
        let (worker, blocking) = bridge::block_on(async {
            let worker = blocks_catchable_signals();
            let blocking = tokio::task::spawn_blocking(blocks_catchable_signals)
                .await
                .unwrap();
            (worker, blocking)
        })
        .unwrap();
        assert!(worker, "a tokio worker of the bridge takes loom's signals");
        assert!(
            blocking,
            "a tokio blocking thread of the bridge takes loom's signals"
        );
    });
}

#[test]
fn a_send_join_handle_is_awaited_from_tokio() {
    let (to_tokio, handles) = std::sync::mpsc::channel::<loom::SendJoinHandle<usize>>();
    // A tokio runtime of its own, on a plain thread.
    let awaiter = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut total = 0;
            while let Ok(handle) = handles.recv() {
                total += handle.await.unwrap();
            }
            total
        })
    });
    runtime(2).run(move || {
        for i in 0..20 {
            let handle = loom::spawn_on(i % 2, move || {
                loom::time::sleep(Duration::from_millis(1)).unwrap();
                i
            });
            to_tokio.send(handle).unwrap();
        }
        drop(to_tokio);
        // And from the bridge's runtime: `.await` inside a bridged future.
        let handle = loom::spawn_on(1, loom::rt::loop_index);
        assert_eq!(
            bridge::block_on(async move { handle.await.unwrap() }).unwrap(),
            1
        );
        // The runtime must outlive the fibers the other thread awaits.
        let total = loom::unblock(move || awaiter.join().unwrap()).unwrap();
        assert_eq!(total, (0..20).sum::<usize>());
    });
}

// ---- reqwest -------------------------------------------------------------

/// A small HTTP/1.1 server on plain threads: `GET /hello/<n>` answers
/// `hello <n>`, `POST /echo` answers the request body reversed. Keeps
/// connections alive, as reqwest's pool expects.
fn http_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            thread::spawn(move || serve_http(stream));
        }
    });
    addr
}

fn serve_http(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (method, path) = (method.to_owned(), path.to_owned());
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, reply) = match (method.as_str(), path.strip_prefix("/hello/")) {
            ("GET", Some(n)) => ("200 OK", format!("hello {n}").into_bytes()),
            ("POST", None) if path == "/echo" => {
                body.reverse();
                ("200 OK", body)
            }
            _ => ("404 Not Found", b"no such thing".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&reply).is_err() {
            return;
        }
    }
}

#[test]
fn reqwest_get_and_post_through_the_bridge() {
    let addr = http_server();
    runtime(2).run(move || {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://{addr}");
        // Several fibers on each loop, each with its own requests.
        let fibers: Vec<_> = (0..40usize)
            .map(|i| {
                let client = client.clone();
                let base = base.clone();
                loom::spawn_on(i % 2, move || {
                    let url = format!("{base}/hello/{i}");
                    let got = bridge::block_on({
                        let client = client.clone();
                        async move {
                            let response = client.get(url).send().await?;
                            let status = response.status();
                            Ok::<_, reqwest::Error>((status, response.text().await?))
                        }
                    })
                    .unwrap()
                    .unwrap();
                    assert_eq!(got, (reqwest::StatusCode::OK, format!("hello {i}")));
                    let body: Vec<u8> = (0..1000 + i).map(|b| (b * 7 + i) as u8).collect();
                    let mut expected = body.clone();
                    expected.reverse();
                    let echoed = bridge::block_on(async move {
                        let response = client
                            .post(format!("{base}/echo"))
                            .body(body)
                            .send()
                            .await?;
                        response.error_for_status()?.bytes().await
                    })
                    .unwrap()
                    .unwrap();
                    assert_eq!(&echoed[..], &expected[..]);
                })
            })
            .collect();
        for fiber in fibers {
            fiber.join().unwrap();
        }
        let missing = bridge::block_on({
            let client = client.clone();
            async move {
                client
                    .get(format!("{base}/nope"))
                    .send()
                    .await
                    .map(|r| r.status())
            }
        })
        .unwrap()
        .unwrap();
        assert_eq!(missing, reqwest::StatusCode::NOT_FOUND);
    });
}

// ---- redis ---------------------------------------------------------------

/// A `redis-server` on a free port, killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `redis-server`, or says why it cannot: under `CI=true` a missing
/// server fails the test, elsewhere it is skipped with a note.
fn redis_server() -> Option<RedisServer> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("redis-server is needed under CI (.ci/run installs it): {e}")
        }
        Err(e) => {
            loom_tests::say(format_args!(
                "redis_set_get_from_1000_fibers: SKIPPED: cannot start redis-server ({e}); \
                 `apt-get install redis-server` to run it"
            ));
            return None;
        }
    };
    let server = RedisServer { child, port };
    // Ready once it answers a PING.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) {
            let mut reply = [0u8; 7];
            if conn.write_all(b"PING\r\n").is_ok()
                && conn.read_exact(&mut reply).is_ok()
                && &reply == b"+PONG\r\n"
            {
                return Some(server);
            }
        }
        assert!(
            Instant::now() < until,
            "redis-server did not answer on port {port}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn redis_set_get_from_1000_fibers() {
    use redis::AsyncCommands;

    const FIBERS: usize = 1000;
    let Some(server) = redis_server() else { return };
    let fibers = loom_tests::fibers_within_budget("redis_set_get_from_1000_fibers", FIBERS / 2) * 2;
    let url = format!("redis://127.0.0.1:{}/", server.port);
    runtime(2).run(move || {
        let client = redis::Client::open(url).unwrap();
        // One multiplexed connection, its driver task on the bridge.
        let connection =
            bridge::block_on(async move { client.get_multiplexed_async_connection().await })
                .unwrap()
                .unwrap();
        let handles: Vec<_> = (0..fibers)
            .map(|i| {
                let connection = connection.clone();
                loom::spawn_on(i % 2, move || {
                    let key = format!("loom:compat:{i}");
                    let value = format!("value {i} {}", "x".repeat(i % 50));
                    let expected = value.clone();
                    let mut set_conn = connection.clone();
                    let set_key = key.clone();
                    bridge::block_on(async move { set_conn.set::<_, _, ()>(set_key, value).await })
                        .unwrap()
                        .unwrap();
                    // Other fibers' commands interleave on the connection.
                    loom::yield_now();
                    let mut get_conn = connection;
                    let got: String = bridge::block_on(async move { get_conn.get(key).await })
                        .unwrap()
                        .unwrap();
                    assert_eq!(got, expected);
                    1usize
                })
            })
            .collect();
        let done: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(done, fibers);
        // Every value is still there, read back in one MGET.
        let keys: Vec<String> = (0..fibers).map(|i| format!("loom:compat:{i}")).collect();
        let mut conn = connection.clone();
        let values: Vec<String> = bridge::block_on(async move { conn.mget(keys).await })
            .unwrap()
            .unwrap();
        for (i, value) in values.iter().enumerate() {
            assert_eq!(value, &format!("value {i} {}", "x".repeat(i % 50)));
        }
    });
    drop(server);
}
