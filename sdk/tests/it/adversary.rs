//! The attacks of the security issue, replayed against real `quiver-coordinator` and
//! `quiver-worker` processes with raw gRPC and Flight clients built from `proto/`, as anyone
//! who can reach the ports could: each is refused with the right status, every process stays
//! up, and a correct job gives exact results afterwards.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightClient, Ticket};
use futures::TryStreamExt;
use prost::Message;
use quiver::prelude::*;
use quiver::{ClientOptions, JobOptions};
use quiver_net::{AuthChannel, CallCredentials, Dialer};
use quiver_plan::PlanNode;
use quiver_proto::v1 as pb;
use quiver_proto::v1::coordinator_client::CoordinatorClient;
use quiver_proto::v1::worker_client::WorkerClient;
use tonic::Code;

use crate::cluster::{ProcessCluster, http_get};
use crate::corpus::{reference_counts, result_counts, write_corpus};
use crate::wordcount::word_count;

/// A cluster with separate client and worker tokens, allowed roots, and everything it needs
/// to be attacked.
struct Target {
    cluster: ProcessCluster,
    client_token: String,
    worker_token: String,
    /// The allowed root; the corpus lives in it.
    data: PathBuf,
    files: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

async fn target(extra_coordinator_args: &[&str]) -> Target {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let files = write_corpus(&data, 2, 800, 61);
    let client_token = quiver_net::Token::random().expose().to_string();
    let worker_token = quiver_net::Token::random().expose().to_string();
    let client_file = dir.path().join("client-token");
    let worker_file = dir.path().join("worker-token");
    std::fs::write(&client_file, &client_token).unwrap();
    std::fs::write(&worker_file, &worker_token).unwrap();
    let data_arg = data.to_string_lossy().into_owned();
    let client_arg = client_file.to_string_lossy().into_owned();
    let worker_arg = worker_file.to_string_lossy().into_owned();
    let mut coordinator_args = vec![
        "--client-token-file",
        &client_arg,
        "--worker-token-file",
        &worker_arg,
        "--allowed-root",
        &data_arg,
    ];
    coordinator_args.extend_from_slice(extra_coordinator_args);
    let cluster = ProcessCluster::start_secured(
        2,
        &coordinator_args,
        &["--token-file", &worker_arg, "--allowed-root", &data_arg],
        ClientOptions::new().token(client_token.clone()),
    )
    .await;
    Target {
        cluster,
        client_token,
        worker_token,
        data,
        files,
        _dir: dir,
    }
}

/// A raw channel to `url` whose calls carry `bearer` (if any) and, when given, a worker
/// session key header.
async fn raw(url: &str, bearer: Option<&str>, worker_key: Option<&str>) -> AuthChannel {
    let mut credentials = CallCredentials::bearer(bearer).unwrap();
    if let Some(k) = worker_key {
        credentials = credentials.with_worker_key(k).unwrap();
    }
    let dialer = Dialer::new(quiver_net::TlsSettings::none(), credentials);
    let channel = dialer.endpoint(url).unwrap().connect().await.unwrap();
    dialer.authenticate(channel)
}

async fn coordinator(url: &str, bearer: Option<&str>) -> CoordinatorClient<AuthChannel> {
    CoordinatorClient::new(raw(url, bearer, None).await)
}

fn assert_code<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, contains: &str) {
    let status = result.expect_err("the call must be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(contains),
        "expected {contains:?} in {:?}",
        status.message()
    );
}

impl Target {
    /// Runs the word count and checks it against the reference: the cluster still works.
    async fn assert_still_exact(&mut self) {
        assert!(self.cluster.all_running(), "a process died");
        let client = self.cluster.client().await;
        let got = result_counts(&word_count(&self.files).collect(&client).await.unwrap());
        assert_eq!(got, reference_counts(&self.files));
    }

    async fn workers(&self) -> Vec<pb::WorkerStatus> {
        self.cluster.client().await.list_workers().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_are_enforced_on_every_port() {
    let mut t = target(&[]).await;
    let url = t.cluster.url.clone();
    // No token, a wrong token: nothing runs.
    assert_code(
        coordinator(&url, None)
            .await
            .list_jobs(pb::ListJobsRequest {})
            .await,
        Code::Unauthenticated,
        "requires a client token",
    );
    assert_code(
        coordinator(&url, Some("not-the-token-at-all-0000"))
            .await
            .submit_job(pb::SubmitJobRequest::default())
            .await,
        Code::Unauthenticated,
        "not accepted",
    );
    // A client token cannot make worker calls; a worker token cannot make client calls.
    let client = &t.client_token.clone();
    let worker = &t.worker_token.clone();
    assert_code(
        coordinator(&url, Some(client))
            .await
            .register_worker(pb::RegisterWorkerRequest::default())
            .await,
        Code::PermissionDenied,
        "this call is for workers",
    );
    assert_code(
        coordinator(&url, Some(worker))
            .await
            .cancel_job(pb::CancelJobRequest::default())
            .await,
        Code::PermissionDenied,
        "this call is for clients",
    );
    // The dashboard and metrics take the client token (Bearer, or Basic with it as password).
    let dashboard = t.cluster.dashboard.clone();
    let page = http_get(&dashboard, "/", None);
    assert!(page.starts_with("HTTP/1.1 401"), "{page}");
    assert!(
        page.contains("WWW-Authenticate") || page.contains("www-authenticate"),
        "{page}"
    );
    assert!(http_get(&dashboard, "/metrics", None).starts_with("HTTP/1.1 401"));
    let worker_bearer = format!("Bearer {worker}");
    assert!(http_get(&dashboard, "/metrics", Some(&worker_bearer)).starts_with("HTTP/1.1 403"));
    let bearer = format!("Bearer {client}");
    let metrics = http_get(&dashboard, "/metrics", Some(&bearer));
    assert!(
        metrics.starts_with("HTTP/1.1 200")
            && metrics.contains("quiver_workers{state=\"alive\"} 2"),
        "{metrics}"
    );
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("anyone:{client}"))
    );
    let page = http_get(&dashboard, "/", Some(&basic));
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("<h1>Jobs</h1>"),
        "{page}"
    );

    // Only the coordinator may command a worker: not a client, not another worker.
    let workers = t.workers().await;
    let address = &workers[0].address;
    for bearer in [None, Some(client.as_str()), Some(worker.as_str())] {
        let mut w = WorkerClient::new(raw(address, bearer, None).await);
        let code = if bearer.is_some() {
            Code::PermissionDenied
        } else {
            Code::Unauthenticated
        };
        assert_code(
            w.remove_job_data(pb::RemoveJobDataRequest {
                job_id: "../../x".into(),
                keep_stages: vec![],
            })
            .await,
            code,
            "coordinator",
        );
        assert_code(
            w.launch_task(pb::LaunchTaskRequest { task: None }).await,
            code,
            "coordinator",
        );
    }
    // Flight needs a token of this cluster before any ticket is looked at.
    let mut flight =
        FlightClient::new_from_inner(FlightServiceClient::new(raw(address, None, None).await));
    let err = flight
        .do_get(Ticket {
            ticket: pb::ShuffleTicket::default().encode_to_vec().into(),
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs the worker token"), "{err}");
    t.assert_still_exact().await;
}

/// The result tickets of a finished collect job (as a driver gets them), without fetching.
async fn result_tickets(t: &Target, dataset: &Dataset) -> (String, Vec<pb::ResultPartition>) {
    let client = t.cluster.client().await;
    let job = client.submit(dataset, Sink::Collect).await.unwrap();
    job.wait().await.unwrap();
    let status = coordinator(&t.cluster.url, Some(&t.client_token))
        .await
        .get_job(pb::GetJobRequest {
            job_id: job.id().to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!status.results.is_empty());
    (job.id().to_string(), status.results)
}

async fn fetch(
    address: &str,
    bearer: Option<&str>,
    ticket: &pb::ShuffleTicket,
) -> Result<usize, String> {
    let mut flight =
        FlightClient::new_from_inner(FlightServiceClient::new(raw(address, bearer, None).await));
    let stream = flight
        .do_get(Ticket {
            ticket: ticket.encode_to_vec().into(),
        })
        .await
        .map_err(|e| e.to_string())?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_cross_job_tickets_are_refused() {
    let mut t = target(&[]).await;
    let (job_a, results_a) = result_tickets(&t, &word_count(&t.files)).await;
    let (_, results_b) = result_tickets(&t, &word_count(&t.files[..1])).await;
    let part = results_a
        .iter()
        .find(|r| r.bytes > 0)
        .expect("a non-empty result partition");
    let genuine = part.ticket.clone().unwrap();
    // A driver presents the ticket's own grant (never its client token, which workers do not
    // accept: a worker is trusted with data, not with the client API); workers their token.
    let client = quiver_net::grant_bearer(genuine.grant.as_ref().unwrap());
    assert!(fetch(&part.address, Some(&client), &genuine).await.unwrap() > 0);
    assert!(
        fetch(&part.address, Some(&t.worker_token), &genuine)
            .await
            .is_ok()
    );
    let client_token = t.client_token.clone();
    let err = fetch(&part.address, Some(&client_token), &genuine)
        .await
        .unwrap_err();
    assert!(err.contains("not accepted"), "{err}");

    let refused = |r: Result<usize, String>, what: &str| {
        let err = r.expect_err("refused");
        assert!(err.contains(what), "expected {what:?} in {err}");
    };
    // Another job's grant on this job's data.
    let other = results_b[0].ticket.clone().unwrap();
    let cross = pb::ShuffleTicket {
        grant: other.grant.clone(),
        ..genuine.clone()
    };
    let other_bearer = quiver_net::grant_bearer(other.grant.as_ref().unwrap());
    refused(
        fetch(&part.address, Some(&other_bearer), &cross).await,
        "is for job",
    );
    // One job's grant as bearer for another job's ticket.
    refused(
        fetch(&part.address, Some(&other_bearer), &genuine).await,
        "not the ticket's grant",
    );
    // The grant's job rewritten: the signature no longer matches.
    let mut rewritten = genuine.clone();
    if let Some(g) = rewritten.grant.as_mut() {
        g.job_id = other.job_id.clone();
    }
    rewritten.job_id = other.job_id.clone();
    let worker = t.worker_token.clone();
    refused(
        fetch(&part.address, Some(&worker), &rewritten).await,
        "not signed by this cluster",
    );
    // A made-up grant, a longer expiry, no grant at all.
    let mut made_up = genuine.clone();
    if let Some(g) = made_up.grant.as_mut() {
        g.signature = vec![7; 32];
    }
    refused(
        fetch(
            &part.address,
            Some(&quiver_net::grant_bearer(made_up.grant.as_ref().unwrap())),
            &made_up,
        )
        .await,
        "not signed by this cluster",
    );
    let mut extended = genuine.clone();
    if let Some(g) = extended.grant.as_mut() {
        g.expires_at_ms += 86_400_000;
    }
    refused(
        fetch(&part.address, Some(&worker), &extended).await,
        "not signed by this cluster",
    );
    let bare = pb::ShuffleTicket {
        grant: None,
        ..genuine.clone()
    };
    refused(
        fetch(&part.address, Some(&client), &bare).await,
        "no read grant",
    );
    // A job id that would be a path.
    let path = pb::ShuffleTicket {
        job_id: "../../etc".into(),
        ..genuine.clone()
    };
    refused(fetch(&part.address, Some(&worker), &path).await, "job id");
    // Runs of buckets the output does not have: past its one bucket, or past the last
    // bucket number.
    let long = pb::ShuffleTicket {
        bucket_count: 1 << 30,
        ..genuine.clone()
    };
    refused(
        fetch(&part.address, Some(&worker), &long).await,
        "the output's buckets are 0..1",
    );
    let wrapping = pb::ShuffleTicket {
        bucket: u32::MAX,
        bucket_count: 2,
        ..genuine.clone()
    };
    refused(
        fetch(&part.address, Some(&worker), &wrapping).await,
        "run past the last bucket number",
    );
    // A token of no role.
    refused(
        fetch(&part.address, Some("wrong-token-wrong-token"), &genuine).await,
        "not accepted",
    );
    assert!(!job_a.is_empty());
    t.assert_still_exact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_one_can_speak_for_a_real_worker() {
    let mut t = target(&[]).await;
    let real = t.workers().await;
    let victim = &real[0];
    let worker = t.worker_token.clone();
    let mut c = coordinator(&t.cluster.url, Some(&worker)).await;
    // Re-registering a real worker's id at another address, with the worker token.
    assert_code(
        c.register_worker(pb::RegisterWorkerRequest {
            worker_id: victim.worker_id.clone(),
            address: "http://127.0.0.1:9".into(),
            slots: 1000,
            hostname: "attacker".into(),
            functions: vec![],
            session_key: "a".repeat(64),
            protocol_version: quiver_proto::PROTOCOL_VERSION,
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
        "does not belong to the session key",
    );
    // A worker with its own key and id, at a real worker's address (to be sent its tasks).
    let key = "d".repeat(64);
    assert_code(
        c.register_worker(pb::RegisterWorkerRequest {
            worker_id: quiver_net::worker_id_for(&key),
            address: victim.address.clone(),
            slots: 1,
            hostname: "attacker".into(),
            functions: vec![],
            session_key: key,
            protocol_version: quiver_proto::PROTOCOL_VERSION,
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        "registered by live worker",
    );
    // Heartbeats, reports and commits in its name, without its session key.
    assert_code(
        c.heartbeat(pb::HeartbeatRequest {
            worker_id: victim.worker_id.clone(),
            running_tasks: 0,
            free_slots: 0,
            draining: true,
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
        "session key",
    );
    let mut forged =
        CoordinatorClient::new(raw(&t.cluster.url, Some(&worker), Some(&"b".repeat(64))).await);
    assert_code(
        forged
            .report_task(pb::TaskResult {
                job_id: quiver_plan::JobId::random().0,
                worker_id: victim.worker_id.clone(),
                outcome: Some(pb::task_result::Outcome::Success(pb::TaskSuccess::default())),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "session key",
    );
    // Nothing changed: the real worker is alive, not draining, at its own address.
    let after = t.workers().await;
    let same = after
        .iter()
        .find(|w| w.worker_id == victim.worker_id)
        .unwrap();
    assert_eq!(same.address, victim.address);
    assert_eq!(same.state, pb::WorkerState::Alive as i32);
    assert_eq!(after.len(), 2);
    t.assert_still_exact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_and_paths_from_the_wire_are_checked() {
    let mut t = target(&[]).await;
    let client_token = t.client_token.clone();
    let mut c = coordinator(&t.cluster.url, Some(&client_token)).await;
    // A directory an id-as-path bug would delete.
    let canary = t.data.join("canary");
    std::fs::create_dir_all(&canary).unwrap();
    for id in [
        canary.to_string_lossy().into_owned(),
        "../../x".into(),
        "".into(),
    ] {
        assert_code(
            c.cancel_job(pb::CancelJobRequest { job_id: id.clone() })
                .await,
            Code::InvalidArgument,
            "job id",
        );
        assert_code(
            c.release_results(pb::ReleaseResultsRequest { job_id: id.clone() })
                .await,
            Code::InvalidArgument,
            "job id",
        );
        assert_code(
            c.get_job(pb::GetJobRequest {
                job_id: id,
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            "job id",
        );
    }
    assert!(canary.exists());

    let client = t.cluster.client().await;
    let submit_error = |dataset: quiver::Result<Dataset>, sink: Sink| {
        let client = client.clone();
        async move {
            client
                .submit(&dataset.unwrap(), sink)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    // Reading a file outside the roots (an attacker's /etc/shadow).
    let secret_dir = t.data.parent().unwrap().join("secret");
    std::fs::create_dir_all(&secret_dir).unwrap();
    let secret = secret_dir.join("shadow");
    std::fs::write(&secret, "root:$6$hash\n").unwrap();
    let err = submit_error(Dataset::read_text(&[&secret]), Sink::Collect).await;
    assert!(
        err.contains("input")
            && err.contains("outside the allowed roots")
            && err.contains(&*t.data.to_string_lossy()),
        "{err}"
    );
    // ... or through a symlink inside the root.
    let link = t.data.join("innocent");
    std::os::unix::fs::symlink(&secret_dir, &link).unwrap();
    let err = submit_error(Dataset::read_text(&[link.join("shadow")]), Sink::Collect).await;
    assert!(err.contains("outside the allowed roots"), "{err}");
    // Writing outside the roots.
    let err = submit_error(
        Dataset::read_text(&t.files),
        Sink::WriteParquet {
            directory: secret_dir.join("out").to_string_lossy().into_owned(),
            mode: quiver::WriteMode::ErrorIfExists,
        },
    )
    .await;
    assert!(
        err.contains("output directory") && err.contains("outside"),
        "{err}"
    );
    // The shadow file's line never came back, and nothing was written.
    assert!(!secret_dir.join("out").exists());
    t.assert_still_exact().await;
}

/// A submitted plan that scans `files` (paths and sizes as given) and counts rows.
fn raw_count_plan(files: Vec<pb::InputFile>) -> pb::PlanNode {
    let scan = PlanNode::Scan(quiver_plan::ScanNode {
        format: quiver_plan::SourceFormat::Text,
        files: vec![],
        schema: quiver_plan::ScanNode::text_schema(),
        csv: Default::default(),
    });
    let mut plan = pb::PlanNode::from(&scan);
    if let Some(pb::plan_node::Node::Scan(s)) = plan.node.as_mut() {
        s.files = files;
    }
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_numbers_are_refused_before_they_size_anything() {
    let mut t = target(&[]).await;
    let client_token = t.client_token.clone();
    let mut c = coordinator(&t.cluster.url, Some(&client_token)).await;
    let file = |size| pb::InputFile {
        path: t.files[0].to_string_lossy().into_owned(),
        size,
        row_groups: 0,
    };
    let collect = Some(pb::Sink {
        kind: Some(pb::sink::Kind::Collect(pb::CollectSink {})),
    });
    let submit = |plan: pb::PlanNode, options: Option<pb::JobOptions>| pb::SubmitJobRequest {
        name: "attack".into(),
        plan: Some(plan),
        sink: collect.clone(),
        options,
        storage_options: None,
    };
    // Partitions and batch sizes that would size allocations.
    for options in [
        pb::JobOptions {
            shuffle_partitions: Some(u32::MAX),
            ..Default::default()
        },
        pb::JobOptions {
            batch_size: Some(u32::MAX),
            ..Default::default()
        },
    ] {
        assert_code(
            c.submit_job(submit(raw_count_plan(vec![file(100)]), Some(options)))
                .await,
            Code::ResourceExhausted,
            "4294967295, over the limit",
        );
    }
    // A text file said to hold 2^62 bytes: 2^35 splits, refused before any is made.
    assert_code(
        c.submit_job(submit(raw_count_plan(vec![file(1 << 62)]), None))
            .await,
        Code::ResourceExhausted,
        "--max-tasks-per-stage",
    );
    // Plans nested deeper than a worker decodes: refused by the limit, or, far deeper, by the
    // decoder itself — never accepted and then undecodable.
    // Each lower() nests 2 levels; on a literal, 47 of them make a plan exactly 100 deep,
    // which decodes on the coordinator (the request adds one level, a task two).
    let deep = |levels: usize| {
        let mut e = lit("x");
        for _ in 0..levels {
            e = lower(e);
        }
        let scan = raw_count_plan(vec![file(100)]);
        let scan = PlanNode::try_from(&scan).unwrap();
        pb::PlanNode::from(&PlanNode::Project {
            input: Box::new(scan),
            exprs: vec![e.alias("line")],
        })
    };
    assert_code(
        c.submit_job(submit(deep(47), None)).await,
        Code::ResourceExhausted,
        "--max-plan-depth",
    );
    assert_code(
        c.submit_job(submit(deep(200), None)).await,
        Code::Internal,
        "recursion limit reached",
    );
    // A plan the planner makes for itself.
    let shuffle_read = pb::PlanNode {
        node: Some(pb::plan_node::Node::ShuffleRead(pb::ShuffleReadNode {
            stage_id: 3,
            schema: quiver_plan::proto_conversion::schema_to_bytes(
                &quiver_plan::ScanNode::text_schema(),
            ),
        })),
    };
    assert_code(
        c.submit_job(submit(shuffle_read, None)).await,
        Code::InvalidArgument,
        "planner makes those",
    );
    // A worker of another release (here: one from before versions were checked).
    assert_code(
        coordinator(&t.cluster.url, Some(&t.worker_token.clone()))
            .await
            .register_worker(pb::RegisterWorkerRequest {
                worker_id: quiver_net::worker_id_for(&"f".repeat(64)),
                address: "http://127.0.0.1:9".into(),
                slots: 1,
                hostname: "old".into(),
                session_key: "f".repeat(64),
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "speaks wire protocol 0",
    );
    // A worker advertising 2^30 slots.
    let worker_token = t.worker_token.clone();
    assert_code(
        coordinator(&t.cluster.url, Some(&worker_token))
            .await
            .register_worker(pb::RegisterWorkerRequest {
                worker_id: quiver_net::worker_id_for(&"c".repeat(64)),
                address: "http://127.0.0.1:9".into(),
                slots: 1 << 30,
                hostname: "big".into(),
                functions: vec![],
                session_key: "c".repeat(64),
                protocol_version: quiver_proto::PROTOCOL_VERSION,
                ..Default::default()
            })
            .await,
        Code::ResourceExhausted,
        "--max-worker-slots",
    );
    // A worker listing more held outputs than any worker sends, or one that names no job.
    let listing = |held_outputs: Vec<pb::HeldMapOutput>| pb::RegisterWorkerRequest {
        worker_id: quiver_net::worker_id_for(&"e".repeat(64)),
        address: "http://127.0.0.1:9".into(),
        slots: 1,
        hostname: "hoarder".into(),
        functions: vec![],
        session_key: "e".repeat(64),
        held_outputs,
        protocol_version: quiver_proto::PROTOCOL_VERSION,
        ..Default::default()
    };
    let one = pb::HeldMapOutput {
        job_id: quiver_plan::JobId::random().0,
        bucket_bytes: vec![1],
        ..Default::default()
    };
    assert_code(
        coordinator(&t.cluster.url, Some(&worker_token))
            .await
            .register_worker(listing(vec![one; quiver_proto::MAX_HELD_OUTPUTS + 1]))
            .await,
        Code::ResourceExhausted,
        "held outputs",
    );
    assert_code(
        coordinator(&t.cluster.url, Some(&worker_token))
            .await
            .register_worker(listing(vec![pb::HeldMapOutput {
                job_id: "../../etc".into(),
                ..Default::default()
            }]))
            .await,
        Code::InvalidArgument,
        "held output's job id",
    );
    // The SDK's own options go through the same checks.
    let client = t.cluster.client().await;
    let err = client
        .submit_with(
            &word_count(&t.files),
            Sink::Collect,
            "too many partitions",
            JobOptions {
                shuffle_partitions: Some(1_000_000),
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("shuffle_partitions is 1000000"), "{err}");
    t.assert_still_exact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_the_cap_holds() {
    let mut t = target(&["--max-connections", "40", "--idle-timeout", "1s"]).await;
    let address = t.cluster.url.trim_start_matches("http://").to_string();
    // Hundreds of connections that never say anything.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    // Every one of them is closed by the server: over the cap at once, the rest when idle.
    let started = Instant::now();
    for mut conn in idle {
        use tokio::io::AsyncReadExt;
        // The server may greet first (its HTTP/2 settings); then it hangs up.
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut sink))
            .await
            .expect("the server closes an idle connection")
            .ok();
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // Meanwhile and afterwards the cluster works (the workers kept their connections: they
    // ping).
    assert_eq!(
        crate::cluster::alive_workers(&t.cluster.client().await).await,
        2
    );
    t.assert_still_exact().await;
}

/// User and system CPU seconds process `pid` has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime field 14, stime field 15.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loop_backs_off_instead_of_spinning() {
    // A coordinator with few descriptors, started through the shell to lower its limit.
    let dir = tempfile::tempdir().unwrap();
    let coordinator_bin = crate::cluster::binary("quiver-coordinator");
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {} --bind 127.0.0.1:0 --dashboard-bind off --state-dir none",
            coordinator_bin.display()
        ))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = {
        use std::io::BufRead;
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let line = lines
            .find_map(|l| l.ok().filter(|l| l.contains("listening on")))
            .expect("coordinator starts");
        std::thread::spawn(move || for _ in lines {});
        line.rsplit(' ').next().unwrap().to_string()
    };
    let address = url.trim_start_matches("http://").to_string();
    // More connections than descriptors: accept() fails with EMFILE.
    let mut conns = Vec::new();
    for _ in 0..120 {
        if let Ok(c) = tokio::net::TcpStream::connect(&address).await {
            conns.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_seconds(child.id());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds(child.id()) - before;
    assert!(
        used < 0.5,
        "the coordinator used {used:.2} CPU seconds in 2 s while out of descriptors"
    );
    // Once the connections go, it serves again.
    drop(conns);
    let _ = dir;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(client) = quiver::Client::connect_with(&url, ClientOptions::new()).await
            && client.list_workers().await.is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the coordinator did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "the coordinator died");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_without_a_token_stay_on_loopback_and_bad_flags_are_errors() {
    let run = |binary: &str, args: &[&str]| {
        let out = std::process::Command::new(crate::cluster::binary(binary))
            .args(args)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Without a token, no port beyond this host, unless --insecure says the network is trusted.
    let (code, err) = run(
        "quiver-coordinator",
        &[
            "--bind",
            "0.0.0.0:0",
            "--dashboard-bind",
            "off",
            "--state-dir",
            "none",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("without a token") && err.contains("--insecure"),
        "{err}"
    );
    let (code, err) = run(
        "quiver-worker",
        &["--bind", "0.0.0.0:0", "--coordinator", "http://127.0.0.1:9"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--insecure"), "{err}");
    // Durations that would panic are refused by the parser, naming the value.
    for bad in ["inf", "NaN", "-1"] {
        let (code, err) = run(
            "quiver-coordinator",
            &[&format!("--heartbeat-timeout={bad}"), "--state-dir", "none"],
        );
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("not a duration") && !err.contains("panicked"),
            "{err}"
        );
    }
    // A token file too short to be a secret.
    let dir = tempfile::tempdir().unwrap();
    let weak = dir.path().join("weak");
    std::fs::write(&weak, "1234").unwrap();
    let (code, err) = run(
        "quiver-coordinator",
        &[
            "--token-file",
            &weak.to_string_lossy(),
            "--dashboard-bind",
            "off",
            "--state-dir",
            "none",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("at least 16 characters"), "{err}");
    // --metrics-public opens /metrics alone.
    let token = dir.path().join("token");
    std::fs::write(&token, quiver_net::Token::random().expose()).unwrap();
    let mut cluster = ProcessCluster::start_secured(
        0,
        &["--token-file", &token.to_string_lossy(), "--metrics-public"],
        &[],
        ClientOptions::new().token_file(&token),
    )
    .await;
    let dashboard = cluster.dashboard.clone();
    assert!(http_get(&dashboard, "/metrics", None).starts_with("HTTP/1.1 200"));
    assert!(http_get(&dashboard, "/", None).starts_with("HTTP/1.1 401"));
    assert!(cluster.all_running());
}
