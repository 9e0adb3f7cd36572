//! `quiver`: talk to a running coordinator — list workers and jobs, show (or follow) a job,
//! cancel one.
//! Human-readable tables by default; `--json` for scripts.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use quiver::{Client, JobProgress, JobState};
use serde_json::{Value, json};

/// Command-line client of a Quiver coordinator.
#[derive(Parser, Debug)]
#[command(name = "quiver", version, about)]
struct Args {
    /// The coordinator's URL.
    #[arg(
        long,
        global = true,
        env = "QUIVER_COORDINATOR",
        default_value = "http://127.0.0.1:50050"
    )]
    coordinator: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// The token and TLS settings.
    #[command(flatten)]
    client: quiver::ClientArgs,
    /// Parse flags and environment, read the token and TLS files, print the effective
    /// configuration, and exit (0 when it is usable). Contacts no coordinator.
    #[arg(long, global = true)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List registered workers.
    Workers,
    /// List jobs, oldest first.
    Jobs,
    /// Show one job with its stages.
    Status {
        /// The job id.
        job: String,
        /// Follow the job until it ends: a line per change (with --json, the status as one
        /// JSON object per line), then the final status; fails when the job did not succeed.
        #[arg(long)]
        watch: bool,
    },
    /// Cancel a job.
    Cancel {
        /// The job id.
        job: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config`: the effective settings, without secrets. The CLI listens on no port.
fn check_config(args: &Args) -> anyhow::Result<()> {
    let settings = args.client.options().describe()?;
    println!("quiver configuration (--check-config)");
    println!("  coordinator  {}", args.coordinator);
    for (name, value) in settings {
        println!("  {name}  {value}");
    }
    println!("configuration OK");
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.check_config {
        return check_config(&args);
    }
    let Some(command) = args.command else {
        anyhow::bail!("no command given: see `quiver --help` (workers, jobs, status, cancel)");
    };
    let client = Client::connect_with(&args.coordinator, args.client.options()).await?;
    match command {
        Command::Workers => {
            let workers = client.list_workers().await?;
            if args.json {
                let list: Vec<Value> = workers
                    .iter()
                    .map(|w| {
                        json!({
                            "worker_id": w.worker_id,
                            "address": w.address,
                            "hostname": w.hostname,
                            "slots": w.slots,
                            "running_tasks": w.running_tasks,
                            "tasks_completed": w.tasks_completed,
                            "state": worker_state(w.state),
                            "last_heartbeat_ms_ago": w.last_heartbeat_ms_ago,
                            "memory_reserved_bytes": w.memory_reserved_bytes,
                            "shuffle_bytes_served": w.shuffle_bytes_served,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<10} {:<28} {:>5} {:>7} {:<6} {:>10}",
                    "WORKER", "ADDRESS", "SLOTS", "RUNNING", "STATE", "HEARTBEAT"
                );
                for w in &workers {
                    println!(
                        "{:<10} {:<28} {:>5} {:>7} {:<6} {:>8}ms",
                        short(&w.worker_id),
                        w.address,
                        w.slots,
                        w.running_tasks,
                        worker_state(w.state),
                        w.last_heartbeat_ms_ago
                    );
                }
            }
        }
        Command::Jobs => {
            let jobs = client.list_jobs().await?;
            if args.json {
                let list: Vec<Value> = jobs.iter().map(job_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<36} {:<16} {:<10} {:>11} {:>9}",
                    "JOB", "NAME", "STATE", "TASKS", "ELAPSED"
                );
                for j in &jobs {
                    let (done, total) = j.tasks();
                    println!(
                        "{:<36} {:<16} {:<10} {:>11} {:>8.1}s",
                        j.job_id,
                        j.name,
                        format!("{:?}", j.state).to_lowercase(),
                        format!("{done}/{total}"),
                        j.elapsed.as_secs_f64()
                    );
                }
            }
        }
        Command::Status { job, watch: false } => {
            let p = client.job(&job).status().await?;
            print_status(&p, args.json)?;
        }
        Command::Status { job, watch: true } => {
            let mut shown = String::new();
            let last = client
                .job(&job)
                .follow(|p| {
                    if args.json {
                        println!("{}", job_json(p));
                    } else {
                        let line = progress_line(p);
                        if line != shown {
                            println!("{:>7.1}s  {line}", p.elapsed.as_secs_f64());
                            shown = line;
                        }
                    }
                })
                .await?;
            if !args.json {
                println!();
                print_status(&last, false)?;
            }
            if last.state != JobState::Succeeded {
                anyhow::bail!("job {job} {}", format!("{:?}", last.state).to_lowercase());
            }
        }
        Command::Cancel { job } => {
            let cancelled = client.job(&job).cancel().await?;
            if args.json {
                println!("{}", json!({ "job_id": job, "cancelled": cancelled }));
            } else if cancelled {
                println!("cancelled {job}");
            } else {
                println!("job {job} had already finished");
            }
        }
    }
    Ok(())
}

/// One job's status: a summary, then a table of its stages (or JSON).
fn print_status(p: &JobProgress, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&job_json(p))?);
        return Ok(());
    }
    println!("job      {}", p.job_id);
    println!("name     {}", p.name);
    println!("state    {}", format!("{:?}", p.state).to_lowercase());
    println!("elapsed  {:.1}s", p.elapsed.as_secs_f64());
    if let Some(why) = &p.waiting_reason {
        println!("waiting  {why}");
    }
    if let Some(e) = &p.error {
        println!("error    {e}");
    }
    println!(
        "\n{:<6} {:<9} {:>9} {:>12} {:>12}  PIPELINE",
        "STAGE", "STATE", "TASKS", "ROWS OUT", "BYTES OUT"
    );
    for s in &p.stages {
        println!(
            "{:<6} {:<9} {:>9} {:>12} {:>12}  {}",
            s.id,
            format!("{:?}", s.state).to_lowercase(),
            format!("{}/{}", s.tasks_done, s.tasks_total),
            s.rows_out,
            s.bytes_out,
            s.description
        );
        if let Some(adaptive) = &s.adaptive {
            println!("{:<6} adaptive: {adaptive}", "");
        }
    }
    Ok(())
}

/// What `status --watch` prints of an update: the job's state and tasks, and each stage's.
fn progress_line(p: &JobProgress) -> String {
    let (done, total) = p.tasks();
    let running: u32 = p.stages.iter().map(|s| s.tasks_running).sum();
    let stages: Vec<String> = p
        .stages
        .iter()
        .map(|s| {
            format!(
                "{}:{} {}/{}",
                s.id,
                format!("{:?}", s.state).to_lowercase(),
                s.tasks_done,
                s.tasks_total
            )
        })
        .collect();
    format!(
        "{:<9} tasks {done}/{total} ({running} running)  {}",
        format!("{:?}", p.state).to_lowercase(),
        stages.join("  ")
    )
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A worker's state as shown; a coordinator never sends an unspecified or unknown one, and
/// the CLI shows it as such rather than guessing.
fn worker_state(state: i32) -> &'static str {
    use quiver_proto::v1::WorkerState;
    match WorkerState::try_from(state) {
        Ok(WorkerState::Alive) => "alive",
        Ok(WorkerState::Lost) => "lost",
        Ok(WorkerState::Draining) => "draining",
        Ok(WorkerState::Left) => "left",
        Ok(WorkerState::Unspecified) => "unspecified",
        Err(_) => "unknown",
    }
}

fn job_json(p: &JobProgress) -> Value {
    json!({
        "job_id": p.job_id,
        "name": p.name,
        "state": format!("{:?}", p.state).to_lowercase(),
        "error": p.error,
        "waiting_reason": p.waiting_reason,
        "elapsed_ms": p.elapsed.as_millis() as u64,
        "stages": p.stages.iter().map(|s| json!({
            "stage_id": s.id,
            "inputs": s.inputs,
            "state": format!("{:?}", s.state).to_lowercase(),
            "tasks_total": s.tasks_total,
            "tasks_done": s.tasks_done,
            "tasks_running": s.tasks_running,
            "rows_out": s.rows_out,
            "bytes_out": s.bytes_out,
            "description": s.description,
            "adaptive": s.adaptive,
        })).collect::<Vec<_>>(),
    })
}
