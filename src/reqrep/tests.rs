//! The client against a real ROUTER on loopback, run on a plain thread with
//! the `zmq` crate: it answers in whatever order a test tells it to.

use super::*;

/// A ROUTER service on a free loopback port; returns its endpoint.
fn router() -> (zmq::Context, zmq::Socket, String) {
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::ROUTER).unwrap();
    socket.set_linger(0).unwrap();
    socket.set_rcvtimeo(5000).unwrap();
    socket.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = socket.get_last_endpoint().unwrap().unwrap();
    (ctx, socket, endpoint)
}

/// Receives `n` requests as `[peer, id, "", body]`.
fn receive(socket: &zmq::Socket, n: usize) -> Vec<Vec<Vec<u8>>> {
    (0..n)
        .map(|_| socket.recv_multipart(0).expect("a request"))
        .collect()
}

fn reply(socket: &zmq::Socket, request: &[Vec<u8>], body: &[u8]) {
    let mut parts: Vec<&[u8]> = request[..request.len() - 1]
        .iter()
        .map(|p| &p[..])
        .collect();
    parts.push(body);
    socket.send_multipart(parts, 0).unwrap();
}

fn limits() -> Limits {
    Limits {
        max_in_flight: 64,
        ..Limits::default()
    }
}

#[tokio::test]
async fn many_requests_in_flight_each_get_their_own_answer_in_any_order() {
    let (_ctx, socket, endpoint) = router();
    let client = Client::open(&tmq::Context::new(), &endpoint, limits(), None).unwrap();
    let service = std::thread::spawn(move || {
        let requests = receive(&socket, 20);
        // Answer backwards: the last asked is answered first.
        for r in requests.iter().rev() {
            let body = r.last().unwrap().clone();
            reply(&socket, r, &[b"re:".as_slice(), &body].concat());
        }
    });
    let asks: Vec<_> = (0..20)
        .map(|i| {
            client
                .request(format!("q{i}").into_bytes(), Duration::from_secs(5))
                .unwrap()
        })
        .collect();
    let answers = futures_util::future::join_all(asks).await;
    for (i, a) in answers.into_iter().enumerate() {
        assert_eq!(a.unwrap(), format!("re:q{i}").into_bytes());
    }
    service.join().unwrap();
    assert_eq!(client.counts().answered.load(Ordering::Relaxed), 20);
    assert_eq!(client.shared.in_flight.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_rep_service_sees_only_the_body() {
    let ctx = zmq::Context::new();
    let rep = ctx.socket(zmq::REP).unwrap();
    rep.set_rcvtimeo(5000).unwrap();
    rep.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = rep.get_last_endpoint().unwrap().unwrap();
    let client = Client::open(&tmq::Context::new(), &endpoint, limits(), None).unwrap();
    let service = std::thread::spawn(move || {
        let parts = rep.recv_multipart(0).unwrap();
        rep.send(&b"pong"[..], 0).unwrap();
        parts
    });
    let answer = client.ask(b"ping".to_vec(), Duration::from_secs(5)).await;
    assert_eq!(answer.unwrap(), b"pong");
    assert_eq!(service.join().unwrap(), vec![b"ping".to_vec()]);
}

#[tokio::test]
async fn an_answer_after_the_deadline_is_late_and_dropped() {
    let (_ctx, socket, endpoint) = router();
    let client = Client::open(&tmq::Context::new(), &endpoint, limits(), None).unwrap();
    let asked = client
        .request(b"slow".to_vec(), Duration::from_millis(100))
        .unwrap();
    let request = tokio::task::spawn_blocking(move || {
        let r = receive(&socket, 1).remove(0);
        (socket, r)
    });
    let answer = asked.await;
    assert!(
        matches!(answer, Err(ReqRepError::Timeout(_, _))),
        "{answer:?}"
    );
    let (socket, r) = request.await.unwrap();
    reply(&socket, &r, b"too late");
    // The next request is answered with its own answer, not the late one.
    let next = client
        .request(b"next".to_vec(), Duration::from_secs(5))
        .unwrap();
    let r = tokio::task::spawn_blocking(move || {
        let r = receive(&socket, 1).remove(0);
        reply(&socket, &r, b"yours");
        socket
    });
    assert_eq!(next.await.unwrap(), b"yours");
    let _socket = r.await.unwrap();
    let counts = client.counts();
    assert_eq!(counts.timed_out.load(Ordering::Relaxed), 1);
    assert_eq!(counts.late.load(Ordering::Relaxed), 1);
    assert_eq!(client.shared.in_flight.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn beyond_the_in_flight_bound_requests_are_refused_at_once_and_counted() {
    let (_ctx, _socket, endpoint) = router();
    let limits = Limits {
        max_in_flight: 2,
        ..Limits::default()
    };
    let client = Client::open(&tmq::Context::new(), &endpoint, limits, None).unwrap();
    let a = client
        .request(b"1".to_vec(), Duration::from_millis(200))
        .unwrap();
    let b = client
        .request(b"2".to_vec(), Duration::from_millis(200))
        .unwrap();
    let c = client.request(b"3".to_vec(), Duration::from_millis(200));
    assert!(matches!(c, Err(ReqRepError::Busy(_))));
    assert_eq!(client.counts().busy.load(Ordering::Relaxed), 1);
    assert!(a.await.is_err() && b.await.is_err());
    // Given up slots come back with the sweep.
    tokio::time::sleep(SWEEP * 2).await;
    assert!(
        client
            .request(b"4".to_vec(), Duration::from_millis(10))
            .is_ok()
    );
}

#[tokio::test]
async fn beyond_the_byte_bound_requests_are_refused_but_one_always_fits() {
    let ctx = tmq::Context::new();
    let limits = Limits {
        max_queue_bytes: 10,
        ..Limits::default()
    };
    // Nobody listens: nothing leaves the queue until the task runs.
    let client = Client::open(&ctx, "tcp://127.0.0.1:9", limits, None).unwrap();
    let big = client.request(vec![b'x'; 100], Duration::from_millis(50));
    assert!(big.is_ok(), "one request always fits an empty queue");
    let more = client.request(vec![b'y'; 5], Duration::from_millis(50));
    assert!(matches!(more, Err(ReqRepError::Busy(_))));
}

#[tokio::test]
async fn a_dead_service_leaves_askers_with_an_error_by_their_deadline() {
    let (_ctx, socket, endpoint) = router();
    drop(socket);
    let client = Client::open(&tmq::Context::new(), &endpoint, limits(), None).unwrap();
    let started = std::time::Instant::now();
    let answer = client
        .ask(b"anyone?".to_vec(), Duration::from_millis(300))
        .await;
    assert!(answer.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn answers_without_our_id_are_counted_as_foreign() {
    let (_ctx, socket, endpoint) = router();
    let client = Client::open(&tmq::Context::new(), &endpoint, limits(), None).unwrap();
    let asked = client
        .request(b"q".to_vec(), Duration::from_secs(5))
        .unwrap();
    let service = tokio::task::spawn_blocking(move || {
        let r = receive(&socket, 1).remove(0);
        let peer = &r[0];
        // Garbage first: a bare frame, then an id that is not hex.
        socket.send_multipart([&peer[..], b"garbage"], 0).unwrap();
        socket
            .send_multipart([&peer[..], b"zz", b"", b"x"], 0)
            .unwrap();
        reply(&socket, &r, b"real");
        socket
    });
    assert_eq!(asked.await.unwrap(), b"real");
    let _socket = service.await.unwrap();
    assert_eq!(client.counts().foreign.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_task_and_frees_queued_bytes() {
    let client = Client::open(&tmq::Context::new(), "tcp://127.0.0.1:9", limits(), None).unwrap();
    let shared = client.shared.clone();
    let pending = client
        .request(b"q".to_vec(), Duration::from_secs(5))
        .unwrap();
    drop(client);
    let answer = tokio::time::timeout(Duration::from_secs(3), pending)
        .await
        .expect("the asker learns at once, not at its deadline");
    assert!(matches!(answer, Err(ReqRepError::Closed(_))), "{answer:?}");
    assert_eq!(shared.queued.load(Ordering::Relaxed), 0);
    assert_eq!(shared.in_flight.load(Ordering::Relaxed), 0);
}

#[test]
fn ids_round_trip_and_others_are_refused() {
    assert_eq!(
        parse_id(format!("{:x}", u64::MAX).as_bytes()),
        Some(u64::MAX)
    );
    assert_eq!(parse_id(b"1f"), Some(31));
    assert_eq!(parse_id(b""), None);
    assert_eq!(parse_id(b"x.1"), None);
    assert_eq!(parse_id(b"11111111111111111"), None);
}
