//! `POST /v1/usage`: usage records in, verdicts out, accepted records committed to the ledger
//! as `pending` before the answer.
//!
//! ## Bodies
//! `Content-Type: application/json` (one object or an array; the default when no type is
//! given), `application/x-ndjson` (JSON Lines; `application/jsonl` too) or `text/csv` (with a
//! header row). They are read by the CLI's own readers ([`crate::input::RecordReader`]), so the
//! columns, the limits and the `invalid-record` findings are exactly those of `check`. A body
//! the reader cannot read as a whole (malformed JSON array, no usable CSV header) is a 400.
//!
//! ## Judging
//! One intake writer thread owns a ledger connection and a long-lived core
//! [`Session`] fed with the ledger's history. Requests are judged one after the other in the
//! order they reach it, at the real clock ([`Session::set_now`]), so a record sees every key an
//! earlier request stored (live dedup). When the ledger changes behind its back (the send loop
//! ended rows, contracts were reloaded), [`AgentState::ledger_changed`] makes it reload the
//! history before the next request.
//!
//! ## Group commit
//! The writer takes every request waiting in its queue (up to [`MAX_GROUP`]) and judges them
//! all inside ONE SQLite transaction, then commits (WAL, `synchronous=FULL`) and only then
//! answers them. Many concurrent clients share one fsync; none is answered before its records
//! are on disk. If the commit fails, every request of the group gets a 503 and nothing of
//! the group is kept.
//!
//! ## Idempotency
//! A request with an `Idempotency-Key` header claims the key first (primary key, insert
//! first: see [`crate::ledger::intake`]); a key already held returns the first answer,
//! byte for byte, with `Idempotent-Replayed: true`, and stores nothing. A record whose
//! `record_id` is already stored returns its first verdict (at its new position) and stores
//! nothing. A rejected record's id is not kept: a corrected record may reuse it.
//!
//! ## Answer
//! `{"verdicts":[...],"summary":{...}}`, each verdict exactly as `check --format json` writes it
//! (`source.file` is `body`), plus `"not_stored":[{"index","reason"}]` for accepted records
//! that could not be put on their marketplace's wire. 200 when every record is accepted and
//! stored, 422 otherwise (the accepted ones are still stored).

use std::io::{Cursor, Read};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use metergate_core::{Code, Session, Summary, Validator, Verdict};
use serde::Serialize;
use tokio::sync::oneshot;

use super::hourly::{self, HourlyConfig};
use super::http::error;
use super::{AgentError, AgentState};
use crate::input::{InputFormat, InputRecord, RecordReader, Row};
use crate::ledger::intake::{Claim, IntakeTx};
use crate::ledger::{Enqueued, Ledger, NewRow};
use crate::output::{JsonLines, OutRow, SourceRef, VerdictSink};

/// The most requests judged and committed in one transaction.
pub const MAX_GROUP: usize = 512;

/// The longest `Idempotency-Key` accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The name verdicts give as `source.file`.
pub const SOURCE_NAME: &str = "body";

/// One request for the writer.
pub(crate) struct Job {
    rows: Vec<InputRecord>,
    key: Option<String>,
    reply: oneshot::Sender<Answer>,
}

/// Messages to the writer.
pub(crate) enum WriterMsg {
    Job(Job),
    Stop,
}

/// The answer to one request.
#[derive(Clone, Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// True when this is the stored answer of an earlier request with the same key.
    pub replayed: bool,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut res = (status, self.body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.replayed {
            res.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        res
    }
}

/// The way into the intake writer.
pub(crate) struct IntakeHandle {
    tx: mpsc::Sender<WriterMsg>,
}

impl IntakeHandle {
    pub(crate) fn new() -> (IntakeHandle, mpsc::Receiver<WriterMsg>) {
        let (tx, rx) = mpsc::channel();
        (IntakeHandle { tx }, rx)
    }

    fn submit(&self, job: Job) -> Result<(), AgentError> {
        self.tx
            .send(WriterMsg::Job(job))
            .map_err(|_| AgentError::Stopped)
    }

    pub(crate) fn stop(&self) {
        let _ = self.tx.send(WriterMsg::Stop);
    }
}

/// The body's format, from `Content-Type`.
fn body_format(headers: &HeaderMap) -> Result<InputFormat, (StatusCode, String)> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(InputFormat::Json);
    };
    let ct = ct.to_str().unwrap_or_default();
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" | "" => Ok(InputFormat::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines"
        | "application/json-lines" => Ok(InputFormat::Jsonl),
        "text/csv" | "application/csv" => Ok(InputFormat::Csv),
        other => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {} is not a usage format: send application/json (an object or an array), application/x-ndjson or text/csv",
                crate::text::clean(other)
            ),
        )),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, (StatusCode, String)> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        (
            StatusCode::BAD_REQUEST,
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        )
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    if s.is_empty() || s.len() > MAX_KEY_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(s.to_owned()))
}

/// Reads every row of a body with the CLI's readers. A JSON body holding one object is read
/// as an array of one.
pub fn read_rows(body: Bytes, format: InputFormat) -> Result<Vec<InputRecord>, crate::CliError> {
    let mut data: &[u8] = &body;
    if let Some(rest) = data.strip_prefix(b"\xef\xbb\xbf") {
        data = rest;
    }
    let first = data.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let reader: Box<dyn Read> = if format == InputFormat::Json && first == Some(b'{') {
        Box::new(
            Cursor::new(&b"["[..])
                .chain(Cursor::new(data.to_vec()))
                .chain(Cursor::new(&b"]"[..])),
        )
    } else {
        Box::new(Cursor::new(data.to_vec()))
    };
    RecordReader::from_reader(SOURCE_NAME, reader, format)?.collect()
}

/// `POST /v1/usage`.
pub async fn post_usage(
    State(state): State<Arc<AgentState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = match body_format(&headers) {
        Ok(f) => f,
        Err((code, msg)) => return error(code, msg),
    };
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err((code, msg)) => return error(code, msg),
    };
    // Small bodies are read right here; big ones off the async workers.
    let rows = if body.len() <= 64 * 1024 {
        read_rows(body, format)
    } else {
        match tokio::task::spawn_blocking(move || read_rows(body, format)).await {
            Ok(r) => r,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    };
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unreadable body: {}", crate::text::clean(&e.to_string())),
            )
        }
    };
    let (reply, answer) = oneshot::channel();
    if state.intake().submit(Job { rows, key, reply }).is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        );
    }
    match answer.await {
        Ok(a) => a.into_response(),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the intake stopped before answering; nothing of this request was stored",
        ),
    }
}

/// Starts the intake writer thread.
pub(crate) fn spawn_writer(
    state: Arc<AgentState>,
    ledger: Ledger,
    rx: mpsc::Receiver<WriterMsg>,
) -> Result<JoinHandle<()>, AgentError> {
    std::thread::Builder::new()
        .name("metergate-intake".into())
        .spawn(move || {
            let mut w = Writer {
                state,
                ledger,
                session: None,
                generation: 0,
                seq: 0,
            };
            w.run(&rx);
        })
        .map_err(|source| AgentError::Io {
            what: "cannot start the intake thread".into(),
            source,
        })
}

struct Writer {
    state: Arc<AgentState>,
    ledger: Ledger,
    /// The long-lived session and the validator it judges with.
    session: Option<(Session<'static>, Arc<Validator>)>,
    generation: u64,
    /// Requests judged so far (for the rows' `source`).
    seq: u64,
}

struct Req {
    rows: Vec<InputRecord>,
    key: Option<String>,
}

impl Writer {
    fn run(&mut self, rx: &mpsc::Receiver<WriterMsg>) {
        loop {
            let first = match rx.recv() {
                Ok(WriterMsg::Job(j)) => j,
                Ok(WriterMsg::Stop) | Err(_) => return,
            };
            let mut jobs = vec![first];
            let mut stop = false;
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(WriterMsg::Job(j)) => jobs.push(j),
                    Ok(WriterMsg::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.group(jobs);
            if stop {
                return;
            }
        }
    }

    /// Judges and commits one group, then answers each request.
    fn group(&mut self, jobs: Vec<Job>) {
        let (reqs, replies): (Vec<Req>, Vec<oneshot::Sender<Answer>>) = jobs
            .into_iter()
            .map(|j| {
                (
                    Req {
                        rows: j.rows,
                        key: j.key,
                    },
                    j.reply,
                )
            })
            .unzip();
        let n = reqs.len();
        match self.judge_group(reqs) {
            Ok(answers) => {
                for (reply, a) in replies.into_iter().zip(answers) {
                    let _ = reply.send(a);
                }
            }
            Err(e) => {
                // The session saw records that were never stored: start it again.
                self.session = None;
                tracing::error!(error = %e, requests = n, "intake: the group was not stored");
                let body = serde_json::json!({
                    "error": format!("not stored, try again: {}", crate::text::clean(&e.to_string()))
                })
                .to_string();
                for reply in replies {
                    let _ = reply.send(Answer {
                        status: 503,
                        body: body.clone(),
                        replayed: false,
                    });
                }
            }
        }
    }

    fn ensure_session(&mut self) -> Result<(), AgentError> {
        let g = self.state.generation();
        if self.session.is_some() && g == self.generation {
            return Ok(());
        }
        let v = self.state.validator();
        let mut s = Validator::shared_session(Arc::clone(&v), Utc::now());
        let history = self.ledger.history()?;
        for h in &history {
            s.add_history(h);
        }
        tracing::debug!(keys = history.len(), "intake: dedup history loaded");
        self.session = Some((s, v));
        self.generation = g;
        Ok(())
    }

    fn judge_group(&mut self, reqs: Vec<Req>) -> Result<Vec<Answer>, AgentError> {
        self.ensure_session()?;
        let Writer {
            state,
            ledger,
            session,
            seq,
            ..
        } = self;
        let hourly = &state.scheduler.hourly;
        let Some((session, validator)) = session.as_mut() else {
            return Err(AgentError::Stopped);
        };
        session.set_now(Utc::now());
        let tx = ledger.intake_tx()?;
        let mut answers = Vec::with_capacity(reqs.len());
        let mut rebuild = false;
        for r in reqs {
            *seq += 1;
            let (a, unsure) =
                judge_request(&tx, session, validator, hourly, r, *seq, &state.metrics)?;
            rebuild |= unsure;
            answers.push(a);
        }
        tx.commit()?;
        if rebuild {
            self.session = None;
        }
        Ok(answers)
    }
}

#[derive(Serialize)]
struct NotStored {
    index: u64,
    reason: String,
}

/// Judges one request inside the group's transaction. The second value is true when the
/// session's dedup state may now differ from the ledger (a record accepted but not stored).
fn judge_request(
    tx: &IntakeTx<'_>,
    session: &mut Session<'static>,
    validator: &Validator,
    hourly: &HourlyConfig,
    req: Req,
    seq: u64,
    metrics: &crate::agent::metrics::Counters,
) -> Result<(Answer, bool), AgentError> {
    if let Some(key) = &req.key {
        if let Claim::Taken((status, body)) = tx.claim_request(key)? {
            return Ok((
                Answer {
                    status,
                    body,
                    replayed: true,
                },
                false,
            ));
        }
    }
    let mut lines: Vec<u8> = Vec::with_capacity(req.rows.len() * 128);
    let mut summary = Summary::default();
    let mut not_stored = Vec::new();
    {
        let mut sink = JsonLines::new(&mut lines);
        let _ = sink.begin_input(SOURCE_NAME, None);
        for (i, rec) in req.rows.into_iter().enumerate() {
            let index = i as u64;
            let src = SourceRef {
                file: SOURCE_NAME,
                line: rec.line,
            };
            // A record id already stored: its first verdict, nothing new.
            let claimed = match &rec.row {
                Row::Record(raw) => match raw.record_id_text() {
                    Some(id) => match tx.claim_record(id)? {
                        Claim::New => Some(id.to_owned()),
                        Claim::Taken(first) => {
                            if let Ok(mut v) = serde_json::from_str::<Verdict>(&first) {
                                v.index = index;
                                summary.add(&v);
                                sink.verdict(&v, src, OutRow::None).map_err(io_err)?;
                                continue;
                            }
                            None
                        }
                    },
                    None => None,
                },
                Row::Unreadable { .. } => None,
            };
            // `[serve] aggregate = "hourly"`: the event is judged on its own (no dedup, no
            // quantity form: the hour's sum settles those) and added to its hour's sum.
            let summed = match &rec.row {
                Row::Record(raw) if hourly.enabled() => {
                    metergate_core::parse::parse_record(raw.clone())
                        .is_ok_and(|r| hourly.applies(&r))
                }
                _ => false,
            };
            let (mut v, parsed) = match rec.row {
                Row::Record(raw) if summed => {
                    hourly::judge_event(validator, raw, index, session.now())
                }
                Row::Record(raw) => session.check_full(raw),
                Row::Unreadable { finding, record_id } => (
                    Verdict::from_findings(index, record_id, vec![finding]),
                    None,
                ),
            };
            v.index = index;
            let repeat = v
                .findings
                .iter()
                .any(|f| f.code == Code::DuplicateIgnored.as_str());
            let mut stored = v.accepted();
            let mut row_id = None;
            if summed {
                if let Some(record) = parsed.filter(|_| v.accepted()) {
                    let (sql, path) = tx.transaction();
                    let added = hourly::add_events_in(sql, path, std::slice::from_ref(&record))?;
                    if let Some(f) = added
                        .first()
                        .and_then(|a| hourly::closed_finding(&record, a))
                    {
                        // Its hour is closed (summed, or taken by a heartbeat): refused.
                        let mut findings = std::mem::take(&mut v.findings);
                        findings.push(f);
                        v = Verdict::from_findings(index, v.record_id.take(), findings);
                        stored = false;
                    }
                }
            } else if v.accepted() && !repeat {
                if let Some(record) = parsed {
                    let c = validator
                        .contracts()
                        .find(record.marketplace, &record.product, &record.customer)
                        .map(|(_, c)| c);
                    match crate::submit::wire_values(&record, c) {
                        Ok(wire) => {
                            let e = tx.enqueue(&[NewRow {
                                record,
                                source: Some(format!("serve#{seq}:{}", rec.line)),
                                wire,
                            }])?;
                            row_id = e.first().map(|e| match e {
                                Enqueued::New(id)
                                | Enqueued::Requeued(id)
                                | Enqueued::Existing(id, _) => *id,
                            });
                        }
                        Err(why) => {
                            stored = false;
                            not_stored.push(NotStored { index, reason: why });
                        }
                    }
                }
            }
            if let Some(id) = claimed {
                if stored {
                    let first = serde_json::to_string(&v).map_err(|e| io_err(e.into()))?;
                    tx.keep_record(&id, &first, row_id)?;
                } else {
                    tx.release_record(&id)?;
                }
            }
            summary.add(&v);
            // S4 observe: verdicts and finding codes for /metrics.
            metrics.observe_verdict(&v);
            sink.verdict(&v, src, OutRow::None).map_err(io_err)?;
        }
    }
    let ok = summary.rejected == 0 && not_stored.is_empty();
    let status = if ok { 200 } else { 422 };
    let mut body = String::with_capacity(lines.len() + 256);
    body.push_str("{\"verdicts\":[");
    let text = String::from_utf8_lossy(&lines);
    body.push_str(&text.trim_end().replace('\n', ","));
    body.push_str("],\"summary\":");
    body.push_str(&serde_json::to_string(&summary).map_err(|e| io_err(e.into()))?);
    if !not_stored.is_empty() {
        body.push_str(",\"not_stored\":");
        body.push_str(&serde_json::to_string(&not_stored).map_err(|e| io_err(e.into()))?);
    }
    body.push('}');
    if let Some(key) = &req.key {
        tx.answer_request(key, status, &body)?;
    }
    Ok((
        Answer {
            status,
            body,
            replayed: false,
        },
        !not_stored.is_empty(),
    ))
}

fn io_err(source: std::io::Error) -> AgentError {
    AgentError::Io {
        what: "cannot build the answer".into(),
        source,
    }
}
