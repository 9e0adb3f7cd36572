//! The clusters' own account of themselves: a running cluster the suite did not start (named by
//! `--coordinator`, reached with the token and TLS settings every client takes: the
//! `quiver::ClientArgs` flags or `QUIVER_*`), and, for every cluster, its workers as the
//! coordinator lists them.

use anyhow::{Context, bail};
use quiver::{Client, ClientOptions};
use quiver_proto::v1::WorkerState;
use serde::Serialize;

/// A coordinator started by someone else, and how to reach it.
pub struct RemoteCluster {
    pub url: String,
    pub options: ClientOptions,
}

impl RemoteCluster {
    /// Connects to `url` and checks that it has live workers.
    pub async fn connect(url: &str, options: ClientOptions) -> anyhow::Result<RemoteCluster> {
        let client = Client::connect_with(url, options.clone()).await?;
        let workers = live_workers(&client)
            .await
            .with_context(|| format!("listing the workers of {url}"))?;
        if workers.is_empty() {
            bail!("the coordinator at {url} has no live workers: start some, then run again");
        }
        Ok(RemoteCluster {
            url: url.to_string(),
            options,
        })
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect_with(&self.url, self.options.clone()).await?)
    }
}

/// One worker, as the coordinator reports it.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerDescription {
    pub worker_id: String,
    pub hostname: String,
    pub address: String,
    pub slots: u32,
}

/// A cluster, as its coordinator reports it.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterDescription {
    pub label: String,
    /// The coordinator's URL (`in process` for a local cluster's).
    pub coordinator: String,
    pub workers: Vec<WorkerDescription>,
}

impl ClusterDescription {
    /// Distinct host names, in order.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.workers.iter().map(|w| w.hostname.clone()).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    pub fn slots(&self) -> u32 {
        self.workers.iter().map(|w| w.slots).sum()
    }
}

/// The live workers (not lost, not draining), in id order.
pub async fn live_workers(client: &Client) -> anyhow::Result<Vec<WorkerDescription>> {
    let mut workers: Vec<WorkerDescription> = client
        .list_workers()
        .await?
        .into_iter()
        .filter(|w| w.state == WorkerState::Alive as i32)
        .map(|w| WorkerDescription {
            worker_id: w.worker_id,
            hostname: w.hostname,
            address: w.address,
            slots: w.slots,
        })
        .collect();
    workers.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
    Ok(workers)
}
