//! The query subcommands: ask the audit API (so that reads from the command
//! line are authenticated and audited like any other) and print the answer.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::table::Shape;

/// Where the API is and who asks.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Base URL of the audit API.
    #[arg(
        long,
        global = true,
        env = "PROLO_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    api_url: String,
    /// Bearer token (see the tokens file of the API).
    #[arg(long, global = true, env = "PROLO_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON even on a terminal (piped output is always JSON).
    #[arg(long, global = true)]
    json: bool,
}

/// Filters and output of list queries.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only these event types (comma-separated).
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Clinical time from (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Clinical time to (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// As known at this time (RFC 3339).
    #[arg(long)]
    as_of: Option<String>,
    /// json (one page), jsonl or csv (the whole answer).
    #[arg(long, default_value = "json")]
    format: String,
    /// Page size for json.
    #[arg(long)]
    limit: Option<usize>,
    /// Page cursor for json (`next_cursor` of the previous page).
    #[arg(long)]
    cursor: Option<String>,
}

impl ListArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![("format", self.format.clone())];
        let mut put = |k: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        };
        put("type", &self.event_type);
        put("from", &self.from);
        put("to", &self.to);
        put("as_of", &self.as_of);
        put("cursor", &self.cursor);
        if let Some(limit) = self.limit {
            q.push(("limit", limit.to_string()));
        }
        q
    }
}

/// A patient, in their clinic.
#[derive(Debug, Args)]
pub struct PatientOf {
    /// Clinic.
    #[arg(long)]
    clinic: String,
    /// Patient.
    #[arg(long)]
    patient: String,
}

impl PatientOf {
    /// The API's path of `what` about this patient.
    fn path(&self, what: &str) -> String {
        let PatientOf { clinic, patient } = self;
        format!("/v1/clinics/{clinic}/patients/{patient}/{what}")
    }
}

/// The questions.
#[derive(Debug, Subcommand)]
pub enum Ask {
    /// A patient's history in stream order.
    History {
        #[command(flatten)]
        patient: PatientOf,
        #[command(flatten)]
        list: ListArgs,
    },
    /// A patient's current view.
    Summary {
        #[command(flatten)]
        patient: PatientOf,
    },
    /// Everything around an adverse event.
    Investigate {
        /// Clinic.
        #[arg(long)]
        clinic: String,
        /// The adverse_event.reported event id.
        #[arg(long)]
        adverse_event: String,
        /// Days around the onset.
        #[arg(long, default_value_t = 14)]
        window_days: i64,
    },
    /// Everyone exposed to a lot.
    LotTrace {
        /// Clinic.
        #[arg(long)]
        clinic: String,
        /// Lot number.
        #[arg(long)]
        lot: String,
        /// json, jsonl or csv.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// A practitioner's credentials, injections and adverse events after them.
    Practitioner {
        /// Clinic.
        #[arg(long)]
        clinic: String,
        /// Practitioner.
        #[arg(long)]
        practitioner: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Who read a patient's data.
    AccessLog {
        #[command(flatten)]
        patient: PatientOf,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Compliance findings, by rule, status, patient, practitioner and time.
    Findings {
        /// Clinic.
        #[arg(long)]
        clinic: String,
        /// A rule, e.g. no_active_consent.
        #[arg(long)]
        rule: Option<String>,
        /// open or resolved.
        #[arg(long)]
        status: Option<String>,
        /// A patient.
        #[arg(long)]
        patient: Option<String>,
        /// A practitioner.
        #[arg(long)]
        practitioner: Option<String>,
        /// Clinical time from (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Clinical time to (RFC 3339).
        #[arg(long)]
        to: Option<String>,
    },
    /// Adverse-event rates per 1,000 injections and the safety signals raised.
    Signals {
        /// Clinic.
        #[arg(long)]
        clinic: String,
    },
    /// One event by id.
    Event {
        /// Event id.
        event_id: String,
    },
    /// Stream position, projector lag, last verification.
    Status,
}

/// Asks the API and prints the answer (pretty JSON, or the stream as sent).
pub async fn run(api: &ApiArgs, ask: Ask) -> Result<()> {
    let (path, query): (String, Vec<(&'static str, String)>) = match &ask {
        Ask::History { patient, list } => (patient.path("history"), list.query()),
        Ask::Summary { patient } => (patient.path("summary"), vec![]),
        Ask::Investigate {
            clinic,
            adverse_event,
            window_days,
        } => (
            format!("/v1/clinics/{clinic}/adverse-events/{adverse_event}/investigation"),
            vec![("window_days", window_days.to_string())],
        ),
        Ask::LotTrace {
            clinic,
            lot,
            format,
        } => (
            format!("/v1/clinics/{clinic}/lots/{lot}/trace"),
            vec![("format", format.clone())],
        ),
        Ask::Practitioner {
            clinic,
            practitioner,
            list,
        } => (
            format!("/v1/clinics/{clinic}/practitioners/{practitioner}/history"),
            list.query(),
        ),
        Ask::AccessLog { patient, list } => (patient.path("access-log"), list.query()),
        Ask::Findings {
            clinic,
            rule,
            status,
            patient,
            practitioner,
            from,
            to,
        } => {
            let given = [
                ("rule", rule),
                ("status", status),
                ("patient", patient),
                ("practitioner", practitioner),
                ("from", from),
                ("to", to),
            ];
            let query = given
                .into_iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
                .collect();
            (format!("/v1/clinics/{clinic}/findings"), query)
        }
        Ask::Signals { clinic } => (format!("/v1/clinics/{clinic}/signals"), vec![]),
        Ask::Event { event_id } => (format!("/v1/events/{event_id}"), vec![]),
        Ask::Status => ("/v1/status".to_owned(), vec![]),
    };
    let Some(token) = &api.token else {
        bail!("a token is needed: --token or PROLO_API_TOKEN (see the API's tokens file)");
    };
    let url = format!("{}{path}", api.api_url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .get(&url)
        .query(&query)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("asking {url}: is the audit API running?"))?;
    let status = response.status();
    let json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = response.text().await.context("reading the answer")?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    if json {
        let value: serde_json::Value =
            serde_json::from_str(&body).context("the answer is not JSON")?;
        // People at a terminal get tables; scripts (and --json) get JSON.
        let shape = match &ask {
            Ask::History { .. } | Ask::Practitioner { .. } | Ask::AccessLog { .. } => {
                Some(Shape::Timeline)
            }
            Ask::Findings { .. } => Some(Shape::Findings),
            Ask::Signals { .. } => Some(Shape::Signals),
            Ask::Status => Some(Shape::Status),
            _ => None,
        };
        let readable = shape
            .filter(|_| !api.json && std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .map(|shape| crate::table::render(shape, &value));
        match readable {
            Some(text) => print!("{text}"),
            None => println!("{}", serde_json::to_string_pretty(&value).unwrap_or(body)),
        }
    } else {
        print!("{body}");
    }
    Ok(())
}
