//! `metergate check [FILE ...]`.

use std::io::{self, BufWriter, IsTerminal};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use metergate_core::{Session, Summary, UsageRecord, Verdict};

use crate::config::{Setup, ValidatorArgs};
use crate::error::CliError;
use crate::input::{InputFormat, InputPath, RecordReader, Row};
use crate::output::{self, OutRow, OutputFormat, SourceRef, VerdictSink};

/// `check` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    /// Inputs: .csv (with a header row), .json (an array) or .jsonl/.ndjson. `-` or none
    /// reads stdin (CSV unless --input-format says otherwise).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The input format, for every input (default: from the extension).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub input_format: Option<InputFormat>,
    /// Contracts, settings, policies, now, ledger.
    #[command(flatten)]
    pub setup: ValidatorArgs,
    /// Output: text (default on a terminal), json (JSON Lines; default otherwise) or csv.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,
}

/// Judges rows in input order through one core [`Session`], numbering them over the whole
/// input (rows the reader could not read included) and counting them.
pub struct Checker<'v> {
    session: Session<'v>,
    index: u64,
    summary: Summary,
}

impl<'v> Checker<'v> {
    /// A session at the setup's "now" with the ledger's history fed in.
    pub fn new(setup: &'v Setup) -> Checker<'v> {
        let mut session = setup.validator.session(setup.now);
        for h in &setup.history {
            session.add_history(h);
        }
        Checker {
            session,
            index: 0,
            summary: Summary::default(),
        }
    }

    /// The verdict on the next row, and the parsed record when it parses.
    pub fn judge(&mut self, row: Row) -> (Verdict, Option<UsageRecord>) {
        let (v, rec) = match row {
            Row::Record(raw) => self.session.check_full(raw),
            Row::Unreadable { finding, record_id } => (
                Verdict::from_findings(self.index, record_id, vec![finding]),
                None,
            ),
        };
        (self.count(v), rec)
    }

    /// The verdict on the next row, for callers that need no parsed record (cheaper than
    /// [`Checker::judge`]: the record id moves into the verdict instead of being copied).
    pub fn verdict(&mut self, row: Row) -> Verdict {
        let v = match row {
            Row::Record(raw) => self.session.check(raw),
            Row::Unreadable { finding, record_id } => {
                Verdict::from_findings(self.index, record_id, vec![finding])
            }
        };
        self.count(v)
    }

    fn count(&mut self, mut v: Verdict) -> Verdict {
        v.index = self.index;
        self.index += 1;
        self.summary.add(&v);
        v
    }

    /// The counts so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The counts.
    pub fn into_summary(self) -> Summary {
        self.summary
    }
}

/// Runs `check`; returns the exit status (0 all accepted, 1 some rejected).
pub fn run(args: &CheckArgs) -> Result<u8, CliError> {
    let inputs = InputPath::list(&args.files)?;
    let formats = inputs
        .iter()
        .map(|i| i.format(args.input_format))
        .collect::<Result<Vec<_>, _>>()?;
    for i in &inputs {
        if let Some(p) = &i.path {
            std::fs::metadata(p).map_err(|e| CliError::open(&i.name, e))?;
        }
    }
    let setup = args.setup.load()?;
    if args.setup.contracts.is_none() && setup.validator.contracts().all().is_empty() {
        eprintln!("metergate: note: no --contracts given and no contracts in the ledger's contract store, so no customer is entitled");
    }
    let stdout = io::stdout();
    let stdout_tty = stdout.is_terminal();
    let format = args.format.unwrap_or(if stdout_tty {
        OutputFormat::Text
    } else {
        OutputFormat::Json
    });
    let color = stdout_tty && output::color_allowed();
    let out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut sink = output::sink(format, out, color);
    let progress = io::stderr().is_terminal() && !stdout_tty;
    let summary = check_inputs(&setup, &inputs, &formats, sink.as_mut(), progress)?;
    Ok(if summary.rejected > 0 { 1 } else { 0 })
}

/// Judges every input in order, writing each verdict to `sink`; returns the summary.
pub fn check_inputs(
    setup: &Setup,
    inputs: &[InputPath],
    formats: &[InputFormat],
    sink: &mut dyn VerdictSink,
    progress: bool,
) -> Result<Summary, CliError> {
    let mut checker = Checker::new(setup);
    let bar = progress.then(|| progress_bar(inputs));
    let wants_rows = sink.wants_rows();
    let mut done_bytes = 0u64;
    for (input, format) in inputs.iter().zip(formats) {
        let mut reader = RecordReader::open(input, *format)?;
        sink.begin_input(&input.name, reader.csv_headers())?;
        let mut n = 0u32;
        while let Some(rec) = reader.next_record()? {
            let kept = match (&rec.row, wants_rows, reader.csv_row().is_some()) {
                (Row::Record(raw), true, false) => Some(raw.clone()),
                _ => None,
            };
            let verdict = checker.verdict(rec.row);
            let row = match (&kept, reader.csv_row()) {
                (Some(raw), _) => OutRow::Raw(raw),
                (None, Some(r)) => OutRow::Csv(r),
                (None, None) => OutRow::None,
            };
            let src = SourceRef {
                file: &input.name,
                line: rec.line,
            };
            sink.verdict(&verdict, src, row)?;
            n = n.wrapping_add(1);
            if n.is_multiple_of(16384) {
                if let Some(b) = &bar {
                    b.set_position(done_bytes + reader.bytes_read());
                    b.set_message(format!("{} records", checker.summary().records));
                }
            }
        }
        done_bytes += reader.bytes_read();
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let summary = checker.into_summary();
    sink.finish(&summary)?;
    Ok(summary)
}

fn progress_bar(inputs: &[InputPath]) -> ProgressBar {
    let total: Option<u64> = inputs.iter().map(InputPath::file_size).sum();
    match total {
        Some(t) => {
            let b = ProgressBar::new(t);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            {
                b.set_style(style);
            }
            b
        }
        None => {
            let b = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                b.set_style(style);
            }
            b
        }
    }
}
