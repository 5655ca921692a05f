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

use std::collections::HashMap;
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

use super::checkpoint::Nudge;
use super::hourly::{self, HourlyConfig};
use super::http::error;
use super::{AgentError, AgentState};
use crate::input::{InputFormat, InputRecord, RecordReader, Row};
use crate::ledger::intake::{Accepted, Claim, IntakeTx, RowText, Stored};
use crate::ledger::{Ledger, NewRow};
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
    pre: Prepared,
    reply: oneshot::Sender<Reply>,
}

/// What the HTTP worker works out for a request's records before the writer judges them
/// ([`prepare`]): for each record that parses and goes on its wire, the wire values and the
/// ledger row's text. Only the writer judges (its session holds the dedup state), but these
/// depend on the record and its contract alone, so they need not wait in its queue. Used
/// only while the writer judges with the same validator (contracts reloaded meanwhile: it
/// works them out again).
pub(crate) struct Prepared {
    validator: Arc<Validator>,
    recs: Vec<Option<Pre>>,
}

/// One record's [`Prepared`] part.
struct Pre {
    wire: serde_json::Value,
    text: RowText,
}

/// Works out [`Prepared`] for `rows` with `validator`.
fn prepare(rows: &[InputRecord], validator: Arc<Validator>) -> Prepared {
    let recs = rows
        .iter()
        .map(|rec| {
            let Row::Record(raw) = &rec.row else {
                return None;
            };
            let record = metergate_core::parse::parse_record(raw.clone()).ok()?;
            let c = validator
                .contracts()
                .find(record.marketplace, &record.product, &record.customer)
                .map(|(_, c)| c);
            let wire = crate::submit::wire_values(&record, c).ok()?;
            let text = RowText::of(&record, &wire);
            Some(Pre { wire, text })
        })
        .collect();
    Prepared { validator, recs }
}

/// What the writer sends back for one request once its group is committed.
pub(crate) enum Reply {
    /// The answer as written by the writer: a replay, the answer of a request with an
    /// `Idempotency-Key` (kept with the key, so written inside the transaction), or a 503.
    Done(Answer),
    /// Judged and committed: the HTTP worker writes the answer ([`render`]), so the
    /// serialised writer thread does not spend its time on JSON text.
    Judged(Judged),
}

/// The settled records of one request, for [`render`].
pub(crate) struct Judged {
    recs: Vec<Rec>,
    not_stored: Vec<NotStored>,
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
    let body_len = body.len();
    // Small bodies are read (and prepared) right here; big ones off the async workers.
    let validator = state.validator();
    let read = move || {
        read_rows(body, format).map(|rows| {
            let pre = prepare(&rows, validator);
            (rows, pre)
        })
    };
    let rows = if body_len <= 64 * 1024 {
        read()
    } else {
        match tokio::task::spawn_blocking(read).await {
            Ok(r) => r,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    };
    let (rows, pre) = match rows {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unreadable body: {}", crate::text::clean(&e.to_string())),
            )
        }
    };
    let (reply, answer) = oneshot::channel();
    if state
        .intake()
        .submit(Job {
            rows,
            key,
            pre,
            reply,
        })
        .is_err()
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        );
    }
    match answer.await {
        Ok(Reply::Done(a)) => a.into_response(),
        Ok(Reply::Judged(j)) => {
            // Big answers are written off the async workers, as big bodies are read.
            let rendered = if j.recs.len() <= 1000 {
                render(&j.recs, &j.not_stored, &state.metrics)
            } else {
                let st = Arc::clone(&state);
                match tokio::task::spawn_blocking(move || {
                    render(&j.recs, &j.not_stored, &st.metrics)
                })
                .await
                {
                    Ok(r) => r,
                    Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            };
            match rendered {
                Ok((status, body)) => Answer {
                    status,
                    body,
                    replayed: false,
                }
                .into_response(),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
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
    nudge: Option<Nudge>,
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
                nudge,
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
    /// Tells the WAL checkpointer about each commit (SQLite).
    nudge: Option<Nudge>,
}

struct Req {
    rows: Vec<InputRecord>,
    key: Option<String>,
    pre: Prepared,
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
        let (reqs, replies): (Vec<Req>, Vec<oneshot::Sender<Reply>>) = jobs
            .into_iter()
            .map(|j| {
                (
                    Req {
                        rows: j.rows,
                        key: j.key,
                        pre: j.pre,
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
                    let _ = reply.send(Reply::Done(Answer {
                        status: 503,
                        body: body.clone(),
                        replayed: false,
                    }));
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

    fn judge_group(&mut self, reqs: Vec<Req>) -> Result<Vec<Reply>, AgentError> {
        self.ensure_session()?;
        let Writer {
            state,
            ledger,
            session,
            seq,
            ..
        } = self;
        let Some((session, validator)) = session.as_mut() else {
            return Err(AgentError::Stopped);
        };
        session.set_now(Utc::now());
        let tx = ledger.intake_tx()?;
        let mut g = Group::default();
        let mut j = Judge {
            tx: &tx,
            session,
            validator,
            hourly: &state.scheduler.hourly,
        };
        for r in reqs {
            *seq += 1;
            j.plan(r, *seq, &mut g)?;
        }
        let stored = if g.items.is_empty() {
            Vec::new()
        } else {
            tx.store_with(&g.items, std::mem::take(&mut g.texts))?
        };
        g.resolve(&stored, validator);
        let answers = g.answer(&tx, &state.metrics)?;
        tx.commit()?;
        if let Some(n) = &self.nudge {
            n.committed();
        }
        if g.unsure {
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

/// One record of a group, between judging and answering.
struct Rec {
    /// Its verdict; final once [`Group::resolve`] ran.
    verdict: Verdict,
    /// Where it starts in the body.
    line: u64,
    fate: Fate,
}

/// What the answer of a [`Rec`] waits for.
#[derive(Clone, Copy)]
enum Fate {
    /// Its verdict is final as judged (and counted in `/metrics`).
    Judged,
    /// Its `record_id` was stored before: the verdict given then (not counted again).
    Replayed,
    /// Stored by the group's [`IntakeTx::store`] as `items[i]`; [`Stored::Taken`] turns it
    /// into [`Fate::Replayed`].
    Store(usize),
    /// Its `record_id` is the one of an earlier record of this group (`recs[i]`): that
    /// record's final verdict.
    SameAs(usize),
}

/// One request of a group.
struct Plan {
    key: Option<String>,
    /// The stored answer of an `Idempotency-Key` already held.
    replay: Option<Answer>,
    /// The earlier request of this group (`plans[i]`) that claimed the same
    /// `Idempotency-Key`: its answer, once written, is this one's.
    same_key_as: Option<usize>,
    recs: std::ops::Range<usize>,
    not_stored: Vec<NotStored>,
}

/// A group of requests being judged: every record's verdict and what the group stores.
#[derive(Default)]
struct Group {
    plans: Vec<Plan>,
    recs: Vec<Rec>,
    /// The accepted records, stored together by [`IntakeTx::store`].
    items: Vec<Accepted>,
    /// The rows' text as prepared by the HTTP workers, one per item (see [`Prepared`]).
    texts: Vec<Option<RowText>>,
    /// The record ids this group stores, and the record (in `recs`) of each.
    ids: HashMap<String, usize>,
    /// The `Idempotency-Key`s this group claimed, and the request (in `plans`) of each: a
    /// claim is answered only when the group is, so a repeat inside the group must not read
    /// the still-empty stored answer.
    keys: HashMap<String, usize>,
    /// True when the session's dedup state may now differ from the ledger (a record it
    /// accepted was not stored): it is rebuilt before the next group.
    unsure: bool,
}

impl Group {
    fn push(&mut self, verdict: Verdict, line: u64, fate: Fate) {
        self.recs.push(Rec {
            verdict,
            line,
            fate,
        });
    }

    /// Settles every verdict once the group's records are stored.
    fn resolve(&mut self, stored: &[Stored], validator: &Validator) {
        for k in 0..self.recs.len() {
            match self.recs[k].fate {
                Fate::Store(i) => {
                    if let (Some(Stored::Conflict(first)), Some(row)) =
                        (stored.get(i), self.items[i].row.as_ref())
                    {
                        // Another agent (or `submit`) stored the key with another quantity
                        // after this session read the history: the core's duplicate-request.
                        if let Some(f) = validator.shared_ledger_duplicate(&row.record, first) {
                            let v = &mut self.recs[k].verdict;
                            let mut findings = std::mem::take(&mut v.findings);
                            findings.push(f);
                            *v = Verdict::from_findings(v.index, v.record_id.take(), findings);
                        }
                        self.recs[k].fate = Fate::Judged;
                        self.unsure = true;
                    }
                    if let Some(Stored::Taken(first)) = stored.get(i) {
                        // Stored by an earlier request or another agent: its first verdict.
                        if let Ok(mut v) = serde_json::from_str::<Verdict>(first) {
                            v.index = self.recs[k].verdict.index;
                            self.recs[k].verdict = v;
                            self.recs[k].fate = Fate::Replayed;
                        }
                        if self.items[i].row.is_some() {
                            self.unsure = true;
                        }
                    }
                }
                Fate::SameAs(o) => {
                    let mut v = self.recs[o].verdict.clone();
                    v.index = self.recs[k].verdict.index;
                    self.recs[k].verdict = v;
                }
                Fate::Judged | Fate::Replayed => {}
            }
        }
    }

    /// Settles every request's reply. A request with an `Idempotency-Key` gets its answer
    /// written here and kept with its key; any other gets its records, for the HTTP worker to
    /// write ([`render`]).
    fn answer(
        &mut self,
        tx: &IntakeTx<'_>,
        metrics: &crate::agent::metrics::Counters,
    ) -> Result<Vec<Reply>, AgentError> {
        let mut replies: Vec<Reply> = Vec::with_capacity(self.plans.len());
        // The plans' ranges of `recs` follow each other in order (a replayed plan has none).
        let mut recs = std::mem::take(&mut self.recs).into_iter();
        let mut pos = 0;
        for p in self.plans.drain(..) {
            if let Some(a) = p.replay {
                replies.push(Reply::Done(a));
                continue;
            }
            if let Some(Reply::Done(first)) = p.same_key_as.and_then(|i| replies.get(i)) {
                let a = Answer {
                    replayed: true,
                    ..first.clone()
                };
                replies.push(Reply::Done(a));
                continue;
            }
            let skip = p.recs.start.saturating_sub(pos);
            let mine: Vec<Rec> = recs.by_ref().skip(skip).take(p.recs.len()).collect();
            pos = p.recs.end.max(pos);
            match &p.key {
                Some(key) => {
                    let (status, body) = render(&mine, &p.not_stored, metrics).map_err(io_err)?;
                    tx.answer_request(key, status, &body)?;
                    replies.push(Reply::Done(Answer {
                        status,
                        body,
                        replayed: false,
                    }));
                }
                None => replies.push(Reply::Judged(Judged {
                    recs: mine,
                    not_stored: p.not_stored,
                })),
            }
        }
        Ok(replies)
    }
}

/// Writes one request's answer, `{"verdicts":[...],"summary":{...}}` (plus `not_stored`),
/// and counts its newly judged records in `/metrics`. Returns the status (200 when every
/// record is accepted and stored, else 422) and the body.
fn render(
    recs: &[Rec],
    not_stored: &[NotStored],
    metrics: &crate::agent::metrics::Counters,
) -> Result<(u16, String), std::io::Error> {
    let mut lines: Vec<u8> = Vec::with_capacity(recs.len() * 128);
    let mut summary = Summary::default();
    {
        let mut sink = JsonLines::new(&mut lines);
        let _ = sink.begin_input(SOURCE_NAME, None);
        for r in recs {
            summary.add(&r.verdict);
            let src = SourceRef {
                file: SOURCE_NAME,
                line: r.line,
            };
            sink.verdict(&r.verdict, src, OutRow::None)?;
        }
    }
    // S4 observe: verdicts and finding codes for /metrics (a replayed verdict is not counted
    // again).
    metrics.observe_verdicts(
        recs.iter()
            .filter(|r| matches!(r.fate, Fate::Judged | Fate::Store(_)))
            .map(|r| &r.verdict),
    );
    let ok = summary.rejected == 0 && not_stored.is_empty();
    let status = if ok { 200 } else { 422 };
    let mut body = String::with_capacity(lines.len() + 256);
    body.push_str("{\"verdicts\":[");
    let text = String::from_utf8_lossy(&lines);
    body.push_str(&text.trim_end().replace('\n', ","));
    body.push_str("],\"summary\":");
    body.push_str(&serde_json::to_string(&summary)?);
    if !not_stored.is_empty() {
        body.push_str(",\"not_stored\":");
        body.push_str(&serde_json::to_string(not_stored)?);
    }
    body.push('}');
    Ok((status, body))
}

/// Judges the requests of one group inside its transaction.
struct Judge<'a, 't> {
    tx: &'a IntakeTx<'t>,
    session: &'a mut Session<'static>,
    validator: &'a Validator,
    hourly: &'a HourlyConfig,
}

impl Judge<'_, '_> {
    /// Judges one request's records into `g`. Nothing of it is stored yet, except its
    /// `Idempotency-Key` claim and its hourly events.
    fn plan(&mut self, req: Req, seq: u64, g: &mut Group) -> Result<(), AgentError> {
        if let Some(key) = &req.key {
            if let Some(&first) = g.keys.get(key) {
                g.plans.push(Plan {
                    key: None,
                    replay: None,
                    same_key_as: Some(first),
                    recs: 0..0,
                    not_stored: Vec::new(),
                });
                return Ok(());
            }
            if let Claim::Taken((status, body)) = self.tx.claim_request(key)? {
                g.plans.push(Plan {
                    key: None,
                    replay: Some(Answer {
                        status,
                        body,
                        replayed: true,
                    }),
                    same_key_as: None,
                    recs: 0..0,
                    not_stored: Vec::new(),
                });
                return Ok(());
            }
            g.keys.insert(key.clone(), g.plans.len());
        }
        let first = g.recs.len();
        let mut not_stored = Vec::new();
        // The prepared rows hold only while the writer judges with the same contracts.
        let mut pre = if std::ptr::eq(Arc::as_ptr(&req.pre.validator), self.validator) {
            req.pre.recs
        } else {
            Vec::new()
        };
        for (i, rec) in req.rows.into_iter().enumerate() {
            let index = i as u64;
            let ready = pre.get_mut(i).and_then(Option::take);
            let id = match &rec.row {
                Row::Record(raw) => raw.record_id_text().map(str::to_owned),
                Row::Unreadable { .. } => None,
            };
            // An id an earlier record of this group stores: that record's verdict.
            if let Some(&o) = id.as_ref().and_then(|id| g.ids.get(id)) {
                g.push(
                    Verdict::from_findings(index, None, Vec::new()),
                    rec.line,
                    Fate::SameAs(o),
                );
                continue;
            }
            // `[serve] aggregate = "hourly"`: the event is judged on its own (no dedup, no
            // quantity form: the hour's sum settles those) and added to its hour's sum.
            let summed = match &rec.row {
                Row::Record(raw) if self.hourly.enabled() => {
                    metergate_core::parse::parse_record(raw.clone())
                        .is_ok_and(|r| self.hourly.applies(&r))
                }
                _ => false,
            };
            if summed {
                if let Row::Record(raw) = rec.row {
                    let (v, fate) = self.hourly_event(raw, id.as_deref(), index)?;
                    g.push(v, rec.line, fate);
                }
                continue;
            }
            let (mut v, parsed) = match rec.row {
                Row::Record(raw) => self.session.check_full(raw),
                Row::Unreadable { finding, record_id } => (
                    Verdict::from_findings(index, record_id, vec![finding]),
                    None,
                ),
            };
            v.index = index;
            if !v.accepted() {
                // Nothing is stored; an id stored before answers its first verdict.
                let (v, fate) = self.replay_or(v, id.as_deref())?;
                g.push(v, rec.line, fate);
                continue;
            }
            let repeat = v
                .findings
                .iter()
                .any(|f| f.code == Code::DuplicateIgnored.as_str());
            let mut text = None;
            let row = match parsed.filter(|_| !repeat) {
                None => None,
                Some(record) => {
                    let wire = match ready {
                        Some(p) => {
                            text = Some(p.text);
                            Ok(p.wire)
                        }
                        None => {
                            let c = self
                                .validator
                                .contracts()
                                .find(record.marketplace, &record.product, &record.customer)
                                .map(|(_, c)| c);
                            crate::submit::wire_values(&record, c)
                        }
                    };
                    match wire {
                        Ok(wire) => Some(NewRow {
                            record,
                            source: Some(format!("serve#{seq}:{}", rec.line)),
                            wire,
                        }),
                        Err(why) => {
                            // Accepted, but it cannot go on its wire: not stored.
                            g.unsure = true;
                            let (v, fate) = self.replay_or(v, id.as_deref())?;
                            if matches!(fate, Fate::Judged) {
                                not_stored.push(NotStored { index, reason: why });
                            }
                            g.push(v, rec.line, fate);
                            continue;
                        }
                    }
                }
            };
            if row.is_none() && id.is_none() {
                g.push(v, rec.line, Fate::Judged);
                continue;
            }
            let verdict = match &id {
                Some(_) => serde_json::to_string(&v).map_err(|e| io_err(e.into()))?,
                None => String::new(),
            };
            if let Some(id) = &id {
                g.ids.insert(id.clone(), g.recs.len());
            }
            g.texts.push(text.filter(|_| row.is_some()));
            g.items.push(Accepted {
                row,
                record_id: id,
                verdict,
            });
            let item = g.items.len() - 1;
            g.push(v, rec.line, Fate::Store(item));
        }
        g.plans.push(Plan {
            key: req.key,
            replay: None,
            same_key_as: None,
            recs: first..g.recs.len(),
            not_stored,
        });
        Ok(())
    }

    /// A record that is not stored: the first verdict of its id when one is stored, else its
    /// own.
    fn replay_or(&self, v: Verdict, id: Option<&str>) -> Result<(Verdict, Fate), AgentError> {
        if let Some(id) = id {
            if let Some(first) = self.tx.stored_verdict(id)? {
                if let Ok(mut f) = serde_json::from_str::<Verdict>(&first) {
                    f.index = v.index;
                    return Ok((f, Fate::Replayed));
                }
            }
        }
        Ok((v, Fate::Judged))
    }

    /// An event for an hourly sum. Its `record_id` is claimed first, insert-first, because an
    /// event added to a sum cannot be taken back.
    fn hourly_event(
        &mut self,
        raw: metergate_core::RawRecord,
        id: Option<&str>,
        index: u64,
    ) -> Result<(Verdict, Fate), AgentError> {
        let claimed = match id {
            Some(id) => match self.tx.claim_record(id)? {
                Claim::New => true,
                Claim::Taken(first) => {
                    if let Ok(mut v) = serde_json::from_str::<Verdict>(&first) {
                        v.index = index;
                        return Ok((v, Fate::Replayed));
                    }
                    false
                }
            },
            None => false,
        };
        let (mut v, parsed) = hourly::judge_event(self.validator, raw, index, self.session.now());
        v.index = index;
        let mut stored = v.accepted();
        if let Some(record) = parsed.filter(|_| v.accepted()) {
            let (sql, path) = self.tx.transaction();
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
        if let (true, Some(id)) = (claimed, id) {
            if stored {
                let first = serde_json::to_string(&v).map_err(|e| io_err(e.into()))?;
                self.tx.keep_record(id, &first, None)?;
            } else {
                self.tx.release_record(id)?;
            }
        }
        Ok((v, Fate::Judged))
    }
}

fn io_err(source: std::io::Error) -> AgentError {
    AgentError::Io {
        what: "cannot build the answer".into(),
        source,
    }
}
