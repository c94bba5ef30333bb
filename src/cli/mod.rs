//! The `ringlypro` sub-commands: serve, migrate, demo, call, test-calls, nlu, tenant, numbers, admin.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::DateTime;
use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::call::CallSettings;
use crate::config::Config;
use crate::dialogue::nlu;
use crate::domain::ids::{CallId, TenantId};
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;
use crate::domain::scheduling::BusinessHours;
use crate::providers::tts::flite::FliteTts;
use crate::services::accounts;
use crate::services::passwords::Passwords;
use crate::sim::{self, Line, Script};
use crate::startup::{Application, engines_from_config, shutdown_signal};
use crate::storage::postgres::{self, admin, calls, credits, messages, numbers, outbox, tenants};
use crate::vendors::twilio::Twilio;

#[derive(Parser, Debug)]
#[command(name = "ringlypro", version, about = "RinglyPro: the AI phone receptionist with a CRM")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (migrates first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Seed a demo tenant, start the server, place a simulated booking call, keep serving.
    Demo(DemoArgs),
    /// Place a simulated call against a running server, exactly as Twilio would.
    Call(CallArgs),
    /// Run scenario files (goal-driven simulated callers) against a running server.
    TestCalls(TestCallsArgs),
    /// Show how the dialogue engine reads one utterance.
    Nlu(NluArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage the pool of RinglyPro numbers given to new tenants at signup.
    #[command(subcommand)]
    Numbers(NumbersCommand),
    /// Manage RinglyPro's administrators.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Let the user who signs in with this email open the admin area.
    Grant { email: String },
}

#[derive(Subcommand, Debug)]
pub enum NumbersCommand {
    /// Add numbers (E.164, e.g. +15550001111) to the pool.
    Add {
        #[arg(required = true)]
        numbers: Vec<String>,
    },
    /// List the pool and which tenant holds each number.
    List,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Exit after the simulated call instead of serving on.
    #[arg(long)]
    pub once: bool,
}

#[derive(Args, Debug)]
pub struct CallArgs {
    /// The tenant's RinglyPro number (E.164).
    #[arg(long)]
    pub to: String,
    /// The caller's number.
    #[arg(long, default_value = "+15557654321")]
    pub from: String,
    /// A line to say after the agent's turn; start it with ">>" to say it over the agent
    /// (barge-in). Repeat for each line.
    #[arg(long = "say")]
    pub say: Vec<String>,
    /// Server base URL (defaults to PUBLIC_URL).
    #[arg(long)]
    pub url: Option<String>,
    /// Hang up right after the last line, without waiting for the agent.
    #[arg(long)]
    pub hang_up: bool,
}

#[derive(Args, Debug)]
pub struct TestCallsArgs {
    /// Scenario files, or folders of them (`*.toml`).
    #[arg(required = true)]
    pub paths: Vec<std::path::PathBuf>,
    /// Server base URL (defaults to PUBLIC_URL).
    #[arg(long)]
    pub url: Option<String>,
    /// `text` (ConversationRelay) or `audio` (Media Streams with the local recogniser).
    #[arg(long, default_value = "text", value_parser = ["text", "audio"])]
    pub path: String,
    /// Scenarios run at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Only scenarios whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Count scenarios marked `known_failing` that fail as failures too.
    #[arg(long)]
    pub strict: bool,
    /// Print each failed call's transcript.
    #[arg(long)]
    pub transcripts: bool,
}

#[derive(Args, Debug)]
pub struct NluArgs {
    /// The moment to read relative dates against (RFC 3339); default now.
    #[arg(long)]
    pub now: Option<String>,
    /// The tenant's time zone (IANA).
    #[arg(long, default_value = "America/New_York")]
    pub tz: String,
    /// Read as Spanish.
    #[arg(long)]
    pub spanish: bool,
    pub utterance: String,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant with its credit account; prints its id.
    Add(Box<TenantAddArgs>),
    /// List tenants.
    List,
}

#[derive(Args, Debug, Clone)]
pub struct TenantAddArgs {
    #[arg(long)]
    pub name: String,
    /// The tenant's RinglyPro number (E.164, e.g. +15550001111).
    #[arg(long)]
    pub number: String,
    /// The owner's phone (E.164), where transfers ring.
    #[arg(long)]
    pub owner_phone: String,
    #[arg(long, default_value = "America/New_York")]
    pub timezone: String,
    #[arg(long, default_value = "mon-fri")]
    pub days: String,
    #[arg(long, default_value = "09:00-17:00")]
    pub hours: String,
    #[arg(long, default_value_t = 30)]
    pub slot_minutes: i32,
    #[arg(long, default_value_t = 0)]
    pub buffer_minutes: i32,
    #[arg(long)]
    pub greeting: Option<String>,
    #[arg(long, default_value = "")]
    pub services: String,
    #[arg(long, default_value = "")]
    pub description: String,
    #[arg(long, default_value = "")]
    pub owner_name: String,
    /// Default language: en or es.
    #[arg(long, default_value = "en")]
    pub language: String,
    /// Also create the owner's sign-in with this email (needs --password).
    #[arg(long, requires = "password")]
    pub email: Option<String>,
    /// The owner's password (at least 10 characters).
    #[arg(long, requires = "email")]
    pub password: Option<String>,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve().await,
        Command::Migrate => {
            database().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Demo(args) => demo(args).await,
        Command::Call(args) => call(args).await,
        Command::TestCalls(args) => test_calls(args).await,
        Command::Nlu(args) => nlu_command(args),
        Command::Tenant(TenantCommand::Add(args)) => {
            let (config, pool) = database().await?;
            let id = add_tenant(&pool, &args).await?;
            if let (Some(email), Some(password)) = (&args.email, &args.password) {
                let passwords = Passwords::new(config.accounts.password_cost);
                accounts::attach_owner(&pool, &passwords, id, email, password).await?;
                eprintln!("owner {email} can sign in at {}/login", config.public_url);
            }
            println!("{id}");
            Ok(())
        }
        Command::Numbers(command) => numbers_command(command).await,
        Command::Admin(AdminCommand::Grant { email }) => {
            let (config, pool) = database().await?;
            if !admin::grant(&pool, &email).await? {
                bail!("no user signs in with {email:?}; sign up first, then grant");
            }
            println!("{} is now an administrator: {}/admin", email.trim(), config.public_url);
            Ok(())
        }
        Command::Tenant(TenantCommand::List) => {
            let (_, pool) = database().await?;
            for t in tenants::list(&pool).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{} {}-{}\tagent {}",
                    t.id,
                    t.ringlypro_number.as_deref().unwrap_or("(number pending)"),
                    t.business_name,
                    t.timezone,
                    t.business_days,
                    t.hours.open.format("%H:%M"),
                    t.hours.close.format("%H:%M"),
                    if t.rachel_enabled { "on" } else { "off" }
                );
            }
            Ok(())
        }
    }
}

/// The configuration and a connection to its database, migrated: what every command
/// that touches the database starts from.
async fn database() -> anyhow::Result<(Config, PgPool)> {
    let config = Config::from_env()?;
    let pool = postgres::connect(&config.database_url).await?;
    postgres::migrate(&pool).await?;
    Ok((config, pool))
}

async fn numbers_command(command: NumbersCommand) -> anyhow::Result<()> {
    let (_, pool) = database().await?;
    match command {
        NumbersCommand::Add { numbers: wanted } => {
            // Every number is checked before any is added.
            let mut parsed = Vec::with_capacity(wanted.len());
            for raw in &wanted {
                if !raw.trim().starts_with('+') {
                    bail!("{raw:?} must be in E.164 form, like +15550001111");
                }
                parsed.push(PhoneNumber::parse(raw).map_err(|e| anyhow::anyhow!("{raw:?}: {e}"))?);
            }
            for number in parsed {
                if numbers::add(&pool, number.as_str()).await? {
                    println!("added {number}");
                } else {
                    println!("{number} is already in the pool");
                }
            }
        }
        NumbersCommand::List => {
            for n in numbers::list(&pool).await? {
                let holder = n.client_id.map(|id| format!("tenant {id}")).unwrap_or_else(|| "free".into());
                println!("{}\t{holder}", n.number);
            }
        }
    }
    Ok(())
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    tracing::info!(?config, "starting");
    let engines = engines_from_config(&config).await?;
    let app = Application::build(config, engines, CallSettings::default()).await?;
    tracing::info!(addr = %app.local_addr(), "listening");
    app.run_until(shutdown_signal()).await
}

/// Validates and creates a tenant. Nothing is written when any field is invalid.
pub async fn add_tenant(pool: &PgPool, args: &TenantAddArgs) -> anyhow::Result<TenantId> {
    let name = args.name.trim();
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    if !args.number.trim().starts_with('+') {
        bail!("--number must be in E.164 form, like +15550001111 (got {:?})", args.number);
    }
    let number = PhoneNumber::parse(&args.number).map_err(|e| anyhow::anyhow!("--number {:?}: {e}", args.number))?;
    if !args.owner_phone.trim().starts_with('+') {
        bail!("--owner-phone must be in E.164 form, like +15551234567 (got {:?})", args.owner_phone);
    }
    let owner = PhoneNumber::parse(&args.owner_phone)
        .map_err(|e| anyhow::anyhow!("--owner-phone {:?}: {e}", args.owner_phone))?;
    let timezone: chrono_tz::Tz = args.timezone.parse().map_err(|_| {
        anyhow::anyhow!("--timezone {:?} is not an IANA time zone (e.g. America/New_York)", args.timezone)
    })?;
    let hours = BusinessHours::parse(&args.days, &args.hours).map_err(|e| anyhow::anyhow!("--days/--hours: {e}"))?;
    if !(5..=480).contains(&args.slot_minutes) {
        bail!("--slot-minutes must be between 5 and 480");
    }
    if !(0..=240).contains(&args.buffer_minutes) {
        bail!("--buffer-minutes must be between 0 and 240");
    }
    let language = Language::from_code(&args.language).ok_or_else(|| anyhow::anyhow!("--language must be en or es"))?;
    let new = tenants::NewTenant {
        business_name: name.to_owned(),
        ringlypro_number: number.as_str().to_owned(),
        owner_name: args.owner_name.clone(),
        owner_phone: owner.as_str().to_owned(),
        timezone,
        business_days: args.days.trim().to_lowercase(),
        open: hours.open,
        close: hours.close,
        appointment_minutes: args.slot_minutes,
        buffer_minutes: args.buffer_minutes,
        custom_greeting: args.greeting.clone().filter(|g| !g.trim().is_empty()),
        services: args.services.clone(),
        business_description: args.description.clone(),
        language,
    };
    let mut tx = pool.begin().await?;
    match tenants::insert(&mut tx, &new).await {
        Ok(id) => {
            numbers::mark_assigned(&mut tx, number.as_str(), id).await?;
            tx.commit().await?;
            Ok(id)
        }
        Err(e) if postgres::violated_constraint(&e).as_deref() == Some("clients_ringlypro_number_key") => {
            bail!("the number {} already belongs to another tenant", number.as_str())
        }
        Err(e) => Err(e).context("creating the tenant"),
    }
}

fn nlu_command(args: NluArgs) -> anyhow::Result<()> {
    let tz: chrono_tz::Tz =
        args.tz.parse().map_err(|_| anyhow::anyhow!("--tz {:?} is not an IANA time zone", args.tz))?;
    let now = match &args.now {
        Some(s) => {
            DateTime::parse_from_rfc3339(s).with_context(|| format!("--now {s:?} is not RFC 3339"))?.with_timezone(&tz)
        }
        None => chrono::Utc::now().with_timezone(&tz),
    };
    let lang = if args.spanish { Language::Spanish } else { Language::English };
    let reading = nlu::read(&args.utterance, now, lang);
    println!("{}", serde_json::to_string(&reading)?);
    Ok(())
}

fn parse_lines(say: &[String]) -> Vec<Line> {
    say.iter()
        .map(|s| match s.trim().strip_prefix(">>") {
            Some(rest) => Line { text: rest.trim().to_owned(), over_agent: true },
            None => Line { text: s.trim().to_owned(), over_agent: false },
        })
        .collect()
}

async fn call(args: CallArgs) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let base = args.url.clone().unwrap_or_else(|| config.public_url.clone());
    let mut script = Script::new(&base, &args.to, &args.from, parse_lines(&args.say));
    script.auth_token = config.twilio_auth_token.as_ref().map(|t| t.expose_secret().to_owned());
    script.hang_up_after_last_line = args.hang_up;
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await?;
    print!("{}", report.transcript());
    println!("{}", report.summary());
    Ok(())
}

/// Seeds each scenario's business through DATABASE_URL, calls the server and prints the
/// summary table; fails when a scenario does.
async fn test_calls(args: TestCallsArgs) -> anyhow::Result<()> {
    use crate::sim::runner::{self, RunOptions, Verdict, VoicePath};
    let mut scenarios = crate::sim::scenario::load(&args.paths)?;
    if let Some(filter) = &args.filter {
        scenarios.retain(|s| s.name.contains(filter.as_str()));
    }
    if scenarios.is_empty() {
        bail!("no scenarios to run");
    }
    let (config, pool) = database().await?;
    let path = if args.path == "audio" { VoicePath::Audio } else { VoicePath::Text };
    let opts = RunOptions {
        base_url: args.url.clone().unwrap_or_else(|| config.public_url.clone()),
        auth_token: config.twilio_auth_token.as_ref().map(|t| t.expose_secret().to_owned()),
        path,
        voice: Some(Arc::new(FliteTts::default())),
    };
    eprintln!("running {} scenarios through the {} path at {}", scenarios.len(), path.name(), opts.base_url);
    let results = runner::run_all(&pool, &scenarios, &opts, args.jobs).await;
    if args.transcripts {
        for r in results.iter().filter(|r| matches!(r.verdict, Verdict::Fail | Verdict::Known)) {
            println!("--- {} ({}) ---\n{}\n", r.name, r.reason, r.transcript);
        }
    }
    print!("{}", runner::table(&results));
    let failed =
        results.iter().filter(|r| r.verdict == Verdict::Fail || (args.strict && r.verdict == Verdict::Known)).count();
    if failed > 0 {
        bail!("{failed} scenario(s) failed");
    }
    Ok(())
}

/// The demo tenant's number.
pub const DEMO_NUMBER: &str = "+15550001111";
/// The demo owner's sign-in.
pub const DEMO_EMAIL: &str = "owner@brightsmile.example";
pub const DEMO_PASSWORD: &str = "bright-smile-demo";

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let (mut config, pool) = database().await?;
    if tenants::find_by_number(&pool, DEMO_NUMBER).await?.is_none() {
        let id = add_tenant(
            &pool,
            &TenantAddArgs {
                name: "Bright Smile Dental".into(),
                number: DEMO_NUMBER.into(),
                owner_phone: "+15551230000".into(),
                timezone: "America/New_York".into(),
                days: "mon-fri".into(),
                hours: "09:00-17:00".into(),
                slot_minutes: 30,
                buffer_minutes: 0,
                greeting: None,
                services: "cleanings are $99, exams are $75, whitening is $250, and fillings start at $150".into(),
                description: "We're at 12 Main Street, next to the library.".into(),
                owner_name: "Dr. Rivera".into(),
                language: "en".into(),
                email: None,
                password: None,
            },
        )
        .await?;
        println!("seeded demo tenant Bright Smile Dental (id {id}, number {DEMO_NUMBER})");
    }
    let demo = tenants::find_by_number(&pool, DEMO_NUMBER)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo tenant {DEMO_NUMBER} is missing"))?;
    let passwords = Passwords::new(config.accounts.password_cost);
    accounts::attach_owner(&pool, &passwords, demo.id, DEMO_EMAIL, DEMO_PASSWORD).await?;
    pool.close().await;
    let engines = engines_from_config(&config).await?;
    // Serve where PUBLIC_URL says when it is set; otherwise on BIND, and tell the
    // simulated caller the address actually bound.
    let explicit_public = std::env::var("PUBLIC_URL").is_ok_and(|v| !v.trim().is_empty());
    if !explicit_public {
        // The server's own links (media stream, summaries) point at BIND too.
        config.public_url = format!("http://{}", config.bind);
    }
    let app = Application::build(config.clone(), engines, CallSettings::default()).await?;
    let addr = app.local_addr();
    if !explicit_public {
        config.public_url = format!("http://{addr}");
    }
    let base = config.public_url.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        tokio::select! { _ = shutdown_signal() => {}, _ = stop_rx => {} }
    }));
    println!("server listening on http://{addr}; placing a simulated call to Bright Smile Dental...");
    let lines = parse_lines(&[
        "Hi, I would like to book an appointment please.".into(),
        "My name is John Smith.".into(),
        "Yes, that is right.".into(),
        "The second one please.".into(),
        "No, that is all. Thank you.".into(),
    ]);
    let mut script = Script::new(&base, DEMO_NUMBER, "+15557654321", lines);
    script.auth_token = config.twilio_auth_token.as_ref().map(|t| t.expose_secret().to_owned());
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await;
    match &report {
        Ok(report) => {
            println!("\n--- transcript (as the server recorded it) ---");
            print!("{}", report.transcript());
            println!("--- result ---");
            println!("{}", report.summary());
            match demo_charge(&config, &report.call_sid).await {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("could not read the call's charge: {e:#}"),
            }
            match demo_outbox(&config, &report.call_sid).await {
                Ok(lines) => lines.iter().for_each(|line| println!("{line}")),
                Err(e) => eprintln!("could not read the call's texts and e-mails: {e:#}"),
            }
            let until = if args.once { " (served until the demo exits; without --once it keeps serving)" } else { "" };
            println!("Messages page: {base}/app/messages{until}");
        }
        Err(e) => eprintln!("the simulated call failed: {e:#}"),
    }
    if args.once {
        let _ = stop_tx.send(());
        server.await??;
        return report.map(|_| ());
    }
    println!("\nSign in to the dashboard: {base}/login");
    println!("  email:    {DEMO_EMAIL}");
    println!("  password: {DEMO_PASSWORD}");
    println!("(Ctrl-C to stop)");
    server.await??;
    Ok(())
}

/// What the demo call cost, as the Credits page shows it.
async fn demo_charge(config: &Config, call_sid: &str) -> anyhow::Result<String> {
    use crate::domain::credits::dollars;
    let pool = postgres::connect(&config.database_url).await?;
    let mut conn = pool.acquire().await?;
    let call = calls::find_by_sid(&pool, call_sid).await?.ok_or_else(|| anyhow::anyhow!("no call {call_sid}"))?;
    let usage = credits::usage_for_call(&mut conn, call.id).await?;
    let account =
        credits::read(&mut conn, call.client_id).await?.ok_or_else(|| anyhow::anyhow!("no credit account"))?;
    let line = match usage {
        Some(u) => match u.not_charged {
            Some(reason) => reason.explanation().to_owned(),
            None => format!(
                "charged: {} min ({} free, {} paid, {}); {} of {} free minutes left this month, balance {} \
                 (see /app/credits)",
                u.minutes,
                u.free_minutes,
                u.paid_minutes,
                dollars(u.cost_cents),
                account.account().free_minutes_left(),
                account.free_minutes_limit,
                dollars(account.balance_cents),
            ),
        },
        None => "not metered yet: Twilio's final status has not come".to_owned(),
    };
    drop(conn);
    pool.close().await;
    Ok(line)
}

/// How long the demo waits for the owner's summary of its call: the summaries worker
/// looks at ended calls every `MAIL_SWEEP_SECS` (10 s by default).
const DEMO_SUMMARY_WAIT: Duration = Duration::from_secs(30);

/// The texts and e-mails the demo call left (the booking's confirmation, the owner's
/// summary), each with its status and, while it waits, why. Waits (bounded) until the
/// call is summarised first, so the owner's summary is there to show.
async fn demo_outbox(config: &Config, call_sid: &str) -> anyhow::Result<Vec<String>> {
    let pool = postgres::connect(&config.database_url).await?;
    let call = calls::find_by_sid(&pool, call_sid).await?.ok_or_else(|| anyhow::anyhow!("no call {call_sid}"))?;
    let mut out = vec!["--- texts and e-mails the call left ---".to_owned()];
    if !wait_for_summary(&pool, call.id).await? {
        out.push(format!(
            "(the owner's summary was not queued within {} s; the server queues it at its next sweep)",
            DEMO_SUMMARY_WAIT.as_secs()
        ));
    }
    let header = out.len();
    let texts = messages::for_call(&pool, call.id).await?;
    let ids: Vec<i64> = texts.iter().map(|m| m.id.get()).collect();
    let mut conn = pool.acquire().await?;
    let deliveries = outbox::deliveries(&mut conn, call.client_id, &ids).await?;
    let twilio = Twilio::from_config(config).is_some();
    for m in &texts {
        let problem = deliveries.iter().find(|d| d.id == m.id.get()).and_then(|d| d.error_message.as_deref());
        out.push(format!(
            "text    to {}  {}  {}",
            m.to_number,
            m.kind.replace('_', " "),
            text_state(&m.status, twilio, problem)
        ));
        out.push(format!("        \"{}\"", one_line(&m.body)));
    }
    let smtp = config.mail.smtp_url.is_some();
    for e in summary_emails(&mut conn, call.id).await? {
        out.push(format!(
            "e-mail  to {}  {}  {}",
            e.to_address,
            e.kind.replace('_', " "),
            email_state(&e.status, smtp, e.last_error.as_deref())
        ));
        out.push(format!("        \"{}\"", one_line(&e.subject)));
    }
    if out.len() == header {
        out.push("none".to_owned());
    }
    drop(conn);
    pool.close().await;
    Ok(out)
}

/// Waits until the call has its summary row (written with the summary it queues);
/// `false` when `DEMO_SUMMARY_WAIT` ran out first.
async fn wait_for_summary(pool: &PgPool, call_id: CallId) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + DEMO_SUMMARY_WAIT;
    loop {
        let done: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM call_summaries WHERE call_id = $1)")
            .bind(call_id)
            .fetch_one(pool)
            .await?;
        if done {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An e-mail of the outbox, as the demo prints it.
#[derive(sqlx::FromRow)]
struct DemoEmail {
    to_address: String,
    kind: String,
    subject: String,
    status: String,
    last_error: Option<String>,
}

/// The owner's summary e-mail of a call: the one queued with the call's summary text.
async fn summary_emails(conn: &mut sqlx::PgConnection, call_id: CallId) -> sqlx::Result<Vec<DemoEmail>> {
    sqlx::query_as(
        "SELECT e.to_address, e.kind, e.subject, e.status, e.last_error FROM email_outbox e \
         JOIN call_summaries s ON s.client_id = e.client_id AND s.summary = e.body \
         WHERE s.call_id = $1 AND e.kind = 'owner_summary' ORDER BY e.id",
    )
    .bind(call_id)
    .fetch_all(conn)
    .await
}

/// A text's status and, while it waits or when it was not sent, why.
fn text_state(status: &str, twilio: bool, problem: Option<&str>) -> String {
    match (status, problem) {
        ("queued", _) if !twilio => {
            "queued: no Twilio account configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)".to_owned()
        }
        ("queued" | "sending", _) => format!("{status}: the outbox worker is sending it"),
        (_, Some(problem)) => format!("{status}: {problem}"),
        _ => status.to_owned(),
    }
}

/// An e-mail's status and, while it waits or when it failed, why.
fn email_state(status: &str, smtp: bool, last_error: Option<&str>) -> String {
    match (status, last_error) {
        ("queued", _) if !smtp => "queued: no SMTP server configured (SMTP_URL)".to_owned(),
        ("queued" | "sending" | "failed", Some(error)) => format!("{status}: {error}"),
        ("queued" | "sending", None) => format!("{status}: the mail worker is sending it"),
        _ => status.to_owned(),
    }
}

/// A message's text on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_starting_with_chevrons_are_said_over_the_agent() {
        let lines = parse_lines(&["hello".into(), ">> wait a second".into()]);
        assert!(!lines[0].over_agent);
        assert!(lines[1].over_agent);
        assert_eq!(lines[1].text, "wait a second");
    }

    #[test]
    fn the_demo_says_why_a_text_or_an_email_waits() {
        assert_eq!(
            text_state("queued", false, None),
            "queued: no Twilio account configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)"
        );
        assert_eq!(text_state("delivered", true, None), "delivered");
        assert_eq!(text_state("suppressed", true, Some("the number opted out")), "suppressed: the number opted out");
        assert_eq!(email_state("queued", false, None), "queued: no SMTP server configured (SMTP_URL)");
        assert_eq!(email_state("queued", true, Some("451 try later")), "queued: 451 try later");
        assert_eq!(email_state("sent", true, None), "sent");
    }

    #[test]
    fn admin_grant_takes_the_users_email() {
        let cli = Cli::try_parse_from(["ringlypro", "admin", "grant", "ops@example.com"]).unwrap();
        assert!(matches!(cli.command, Command::Admin(AdminCommand::Grant { email }) if email == "ops@example.com"));
        assert!(Cli::try_parse_from(["ringlypro", "admin", "grant"]).is_err());
    }
}
