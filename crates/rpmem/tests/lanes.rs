//! The client engine over in-memory socket pairs: each test plays the
//! target by hand (with rpmem-proto's messages) behind the real TCP lane
//! code, so what the engine sends, and what it makes of every answer,
//! good or bad, is checked deterministically without ssh or a daemon.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use memmap2::MmapMut;
use rpmem::{Config, ControlChannel, Error, RemotePool, PERSIST_RELAXED};
use rpmem_proto::control::{Answer, PoolRequest, Request, Session, SECRET_LEN};
use rpmem_proto::data::{
    Ack, Hello, Op, RequestHeader, ACK_LEN, FLAG_RELAXED, HEADER_LEN, HELLO_LEN, HELLO_TAG,
};
use rpmem_proto::{PoolAttr, Status, PROTO_VERSION};
use rpmem_transport::initiator::{Connector, InitiatorLane, LaneOptions};
use rpmem_transport::tcp::TcpLane;
use rpmem_transport::{Region, TransportError};

const SIZE: usize = 64 << 10;
const SECRET: [u8; SECRET_LEN] = [9; SECRET_LEN];

/// The control channel: grants the session and records the requests.
struct Control(Arc<Mutex<Vec<&'static str>>>);

impl ControlChannel for Control {
    fn call(&mut self, req: &Request) -> rpmem::Result<Answer> {
        self.0.lock().unwrap().push(req.name());
        Ok(if req.opens_pool() {
            Answer::Opened(Session {
                version: PROTO_VERSION,
                nlanes: 1,
                remote_size: SIZE as u64,
                has_header: false,
                attr: PoolAttr::default(),
                addr: "in-memory".into(),
                port: 0,
                secret: SECRET,
                fabric: None,
            })
        } else {
            Answer::Done
        })
    }

    fn finish(&mut self) {}
}

/// The target's end of a lane.
struct Target(UnixStream);

impl Target {
    /// The next request and its payload.
    fn next(&mut self) -> (RequestHeader, Vec<u8>) {
        let mut raw = [0u8; HEADER_LEN];
        self.0.read_exact(&mut raw).unwrap();
        let h = RequestHeader::decode(&raw).unwrap();
        let mut payload = vec![
            0u8;
            if h.op.has_payload() {
                h.length as usize
            } else {
                0
            }
        ];
        self.0.read_exact(&mut payload).unwrap();
        (h, payload)
    }

    fn answer(&mut self, tag: u64, status: Status) {
        self.0.write_all(&Ack { tag, status }.encode()).unwrap();
    }

    /// Whether the initiator ended the lane.
    fn ended(&mut self) -> bool {
        matches!(self.0.read(&mut [0u8; 1]), Ok(0))
    }
}

type Script = Box<dyn FnOnce(Target) + Send>;

/// Opens the lane over a socket pair whose other end answers the Hello
/// with `admit`, then runs the script.
struct Scripted {
    admit: Status,
    script: Mutex<Option<Script>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Scripted {
    fn new(script: impl FnOnce(Target) + Send + 'static) -> Scripted {
        Scripted {
            admit: Status::Ok,
            script: Mutex::new(Some(Box::new(script))),
            thread: Mutex::new(None),
        }
    }

    /// Waits for the target's script and re-raises its failures.
    fn join(&self) {
        if let Some(t) = self.thread.lock().unwrap().take() {
            t.join().expect("the target's script failed");
        }
    }
}

impl Connector for Scripted {
    fn name(&self) -> &'static str {
        "in-memory"
    }

    fn connect(
        &self,
        session: &Session,
        region: Region,
        options: &LaneOptions,
    ) -> rpmem_transport::Result<Vec<Box<dyn InitiatorLane>>> {
        assert_eq!(session.nlanes, 1);
        let (ours, theirs) = UnixStream::pair().unwrap();
        let script = self.script.lock().unwrap().take().unwrap();
        let admit = self.admit;
        *self.thread.lock().unwrap() = Some(std::thread::spawn(move || {
            let mut t = Target(theirs);
            let mut raw = [0u8; HELLO_LEN];
            t.0.read_exact(&mut raw).unwrap();
            let hello = Hello::decode(&raw).unwrap();
            assert_eq!((hello.lane, hello.secret), (0, SECRET));
            t.answer(HELLO_TAG, admit);
            if admit == Status::Ok {
                script(t);
            }
        }));
        let lane = TcpLane::over(ours, 0, &session.secret, region, options)?;
        Ok(vec![Box::new(lane)])
    }
}

struct Fixture {
    region: MmapMut,
    calls: Arc<Mutex<Vec<&'static str>>>,
    cfg: Config,
}

impl Fixture {
    fn new() -> Fixture {
        let mut region = MmapMut::map_anon(SIZE).unwrap();
        for (i, b) in region.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let cfg = Config {
            io_timeout: Duration::from_millis(300),
            work_queue_size: 2,
            ..Config::default()
        };
        Fixture {
            region,
            calls: Default::default(),
            cfg,
        }
    }

    fn open(&self, connector: &Scripted) -> Result<RemotePool, Error> {
        let req = Request::Open {
            pool: PoolRequest::new("in-memory.set", SIZE as u64, 1),
        };
        let control = Box::new(Control(self.calls.clone()));
        // SAFETY: the region outlives the pool (every test drops the pool
        // before the fixture).
        unsafe {
            RemotePool::establish(
                &self.cfg,
                "test".into(),
                control,
                connector,
                &req,
                self.region.as_ptr(),
            )
        }
        .map(|(p, _)| p)
    }

    fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        &self.region[offset..offset + len]
    }
}

fn errno_and_message(r: rpmem::Result<()>) -> (i32, String) {
    let e = r.unwrap_err();
    (e.errno(), e.to_string())
}

#[test]
fn persists_send_the_range_with_the_mapped_flags_and_wait_for_the_answer() {
    let f = Fixture::new();
    let expect: Vec<Vec<u8>> = [(4096, 100), (8000, 5000), (0, 8)]
        .iter()
        .map(|&(o, l)| f.bytes(o, l).to_vec())
        .collect();
    let c = Scripted::new(move |mut t| {
        let wanted = [
            (Op::Persist, 0, 4096),
            (Op::Persist, FLAG_RELAXED, 8000),
            (Op::DeepPersist, 0, 0),
        ];
        for ((op, flags, offset), data) in wanted.into_iter().zip(expect) {
            let (h, payload) = t.next();
            assert_eq!((h.op, h.flags, h.offset), (op, flags, offset));
            assert_eq!(payload, data);
            t.answer(h.tag, Status::Ok);
        }
        assert!(t.ended());
    });
    let pool = f.open(&c).unwrap();
    pool.persist(4096, 100, 0, 0).unwrap();
    pool.persist(8000, 5000, 0, PERSIST_RELAXED).unwrap();
    pool.deep_persist(0, 8, 0).unwrap();
    // Flags the API does not define never reach the wire.
    assert_eq!(errno_and_message(pool.persist(0, 8, 0, 2)).0, libc::EINVAL);
    pool.close().unwrap();
    c.join();
    assert_eq!(*f.calls.lock().unwrap(), ["open", "close"]);
}

#[test]
fn flushes_go_unanswered_until_a_drain_and_the_queue_limit_forces_one() {
    let f = Fixture::new();
    let c = Scripted::new(|mut t| {
        // Queue limit 2: the third flush drains first.
        let ops: Vec<Op> = (0..5)
            .map(|_| {
                let (h, _) = t.next();
                if h.op.has_reply() {
                    t.answer(h.tag, Status::Ok);
                }
                h.op
            })
            .collect();
        assert_eq!(ops, [Op::Flush, Op::Flush, Op::Drain, Op::Flush, Op::Drain]);
    });
    let pool = f.open(&c).unwrap();
    for i in 0..3 {
        pool.flush(i * 4096, 4096, 0, 0).unwrap();
    }
    pool.drain(0, 0).unwrap();
    assert_eq!(errno_and_message(pool.drain(0, 1)).0, libc::EINVAL);
    drop(pool);
    c.join();
}

#[test]
fn reads_fill_the_buffer_and_a_refusal_keeps_the_lane() {
    let f = Fixture::new();
    let c = Scripted::new(|mut t| {
        let (h, _) = t.next();
        assert_eq!((h.op, h.offset, h.length), (Op::Read, 100, 5));
        t.answer(h.tag, Status::Ok);
        t.0.write_all(b"hello").unwrap();
        let (h, _) = t.next();
        t.answer(h.tag, Status::Fatal);
        let (h, _) = t.next();
        assert_eq!(h.op, Op::Persist);
        t.answer(h.tag, Status::Ok);
    });
    let pool = f.open(&c).unwrap();
    let mut buf = [0u8; 5];
    pool.read(&mut buf, 100, 0).unwrap();
    assert_eq!(&buf, b"hello");
    let (errno, msg) = errno_and_message(pool.persist(0, 8, 0, 0));
    assert_eq!(errno, Status::Fatal.errno(), "{msg}");
    pool.persist(0, 8, 0, 0).unwrap();
    drop(pool);
    c.join();
}

/// Runs one persist against a target that answers with `answer`, checks
/// the lane is broken for good, and returns the first error's message.
fn broken_by(answer: impl FnOnce(&mut Target, u64) + Send + 'static) -> String {
    let f = Fixture::new();
    let c = Scripted::new(move |mut t| {
        let (h, _) = t.next();
        answer(&mut t, h.tag);
        // Nothing more arrives: the engine gave up on the lane.
        let mut rest = Vec::new();
        let _ = t.0.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{} more bytes", rest.len());
    });
    let pool = f.open(&c).unwrap();
    let (errno, msg) = errno_and_message(pool.persist(4096, 64, 0, 0));
    assert_eq!(errno, libc::ECONNRESET, "{msg}");
    let (errno, again) = errno_and_message(pool.persist(4096, 64, 0, 0));
    assert_eq!(errno, libc::ECONNABORTED, "{again}");
    assert!(
        again.contains("unusable after an earlier failure"),
        "{again}"
    );
    drop(pool);
    c.join();
    msg
}

#[test]
fn a_silent_target_times_out_and_breaks_the_lane() {
    let start = Instant::now();
    // Answer nothing; the initiator gives up and ends the lane.
    let msg = broken_by(|_, _| {});
    assert!(msg.contains("did not answer in time"), "{msg}");
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn an_answer_to_another_request_breaks_the_lane() {
    let msg = broken_by(|t, tag| t.answer(tag + 1, Status::Ok));
    assert!(msg.contains("out-of-order acknowledgement"), "{msg}");
}

#[test]
fn a_malformed_answer_breaks_the_lane() {
    let msg = broken_by(|t, tag| {
        let mut raw = Ack {
            tag,
            status: Status::Ok,
        }
        .encode();
        raw[8] = 0xee;
        t.0.write_all(&raw).unwrap();
    });
    assert!(msg.contains("bad acknowledgement"), "{msg}");
}

#[test]
fn a_target_that_hangs_up_mid_answer_breaks_the_lane() {
    let msg = broken_by(|t, _| {
        t.0.write_all(&[0u8; ACK_LEN / 2]).unwrap();
        t.0.shutdown(std::net::Shutdown::Write).unwrap();
    });
    assert!(msg.contains("closed the connection"), "{msg}");
}

#[test]
fn a_refused_lane_fails_the_open_with_the_status() {
    let f = Fixture::new();
    let mut c = Scripted::new(|_| {});
    c.admit = Status::Unauthenticated;
    let e = f.open(&c).err().unwrap();
    assert_eq!(e.errno(), Status::Unauthenticated.errno(), "{e}");
    c.join();
    // The pool was released on the target before the error came back.
    assert_eq!(*f.calls.lock().unwrap(), ["open", "close"]);
}

#[test]
fn transport_errors_keep_their_meaning() {
    let e = Error::from(TransportError::Invalid("x".into()));
    assert_eq!(e.errno(), libc::EINVAL);
    let e = Error::from(TransportError::Protocol("x".into()));
    assert_eq!(e.errno(), libc::EPROTO);
}
