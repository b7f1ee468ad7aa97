//! Ganesha's export manager over D-Bus (`org.ganesha.nfsd.exportmgr` on
//! `/org/ganesha/nfsd/ExportMgr`), through `zbus`.
//!
//! `AddExport(conf_path, "export(path = DIR)")` reads one `EXPORT` block from
//! a file and makes it live; `RemoveExport(id)` withdraws it; `ShowExports`
//! lists the live ones. Ganesha's "already active" and "not found" answers
//! are success for us: both operations are idempotent from the caller's
//! point of view. Every call has a timeout, so a wedged server cannot hang a
//! provisioning worker.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use zbus::Connection;

const DEST: &str = "org.ganesha.nfsd";
const PATH: &str = "/org/ganesha/nfsd/ExportMgr";
const IFACE: &str = "org.ganesha.nfsd.exportmgr";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A D-Bus failure, with the operation.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// Connecting to the bus failed.
    #[error("connecting to D-Bus at {address}: {source}")]
    Connect {
        /// The bus address.
        address: String,
        /// What the D-Bus library reported when connecting.
        #[source]
        source: Box<zbus::Error>,
    },
    /// A method call failed.
    #[error("Ganesha {op}: {source}")]
    Call {
        /// The operation.
        op: String,
        /// What Ganesha or the bus answered.
        #[source]
        source: Box<zbus::Error>,
    },
    /// A method call answered, but its reply says it did not do all of it.
    #[error("Ganesha {op}: {reply}")]
    Refused {
        /// The call.
        op: String,
        /// Ganesha's reply.
        reply: String,
    },
    /// A method call did not answer in time.
    #[error("Ganesha {0}: no answer over D-Bus within {TIMEOUT:?}")]
    Timeout(String),
}

/// A client of Ganesha's export manager.
#[derive(Clone, Debug)]
pub struct ExportMgr {
    conn: Connection,
}

type ProtoFlags = (
    (String, bool),
    (String, bool),
    (String, bool),
    (String, bool),
    (String, bool),
    (String, bool),
    (String, bool),
    (String, bool),
);
type ShowExports = ((u64, u64), Vec<(u16, String, ProtoFlags, (u64, u64))>);

impl ExportMgr {
    /// Connects to the bus at `address` (e.g. `unix:path=/run/x/bus.sock`).
    pub async fn connect(address: &str) -> Result<Self, DbusError> {
        let connect = |source| DbusError::Connect {
            address: address.to_string(),
            source: Box::new(source),
        };
        let fut = async {
            zbus::connection::Builder::address(address)
                .map_err(connect)?
                .build()
                .await
                .map_err(connect)
        };
        let conn = tokio::time::timeout(TIMEOUT, fut)
            .await
            .map_err(|_| DbusError::Timeout(format!("connect to {address}")))??;
        Ok(ExportMgr { conn })
    }

    async fn call<B>(&self, op: String, method: &str, body: &B) -> Result<zbus::Message, DbusError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let fut = self
            .conn
            .call_method(Some(DEST), PATH, Some(IFACE), method, body);
        match tokio::time::timeout(TIMEOUT, fut).await {
            Err(_) => Err(DbusError::Timeout(op)),
            Ok(r) => r.map_err(|source| DbusError::Call {
                op,
                source: Box::new(source),
            }),
        }
    }

    /// Makes the export for directory `path` in file `conf` live; `Ok(false)`
    /// when it already was.
    pub async fn add_export(&self, conf: &Path, path: &str) -> Result<bool, DbusError> {
        let op = format!("AddExport({}, path = {path})", conf.display());
        let expr = format!("export(path = {path})");
        let conf = conf.display().to_string();
        match self
            .call(op.clone(), "AddExport", &(conf.as_str(), expr.as_str()))
            .await
        {
            Ok(_) => Ok(true),
            Err(DbusError::Call { source, .. })
                if error_text(&source).contains("already active") =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Updates live export `id` from its `EXPORT` block in file `conf` (who
    /// may mount, squash): the export stays, and so do its mounts.
    pub async fn update_export(&self, conf: &Path, id: u16) -> Result<(), DbusError> {
        let op = format!("UpdateExport({}, export_id = {id})", conf.display());
        let expr = format!("export(export_id = {id})");
        let conf = conf.display().to_string();
        let msg = self
            .call(op.clone(), "UpdateExport", &(conf.as_str(), expr.as_str()))
            .await?;
        // Some config errors come back as a success whose text lists them
        // (Ganesha then drops the block's CLIENT: fails closed, but the
        // list is not what was asked for).
        let reply: String = msg.body().deserialize().map_err(|source| DbusError::Call {
            op: op.clone(),
            source: Box::new(source),
        })?;
        if reply.contains("Errors found") {
            return Err(DbusError::Refused { op, reply });
        }
        Ok(())
    }

    /// Withdraws export `id`; `Ok(false)` when it was not live.
    pub async fn remove_export(&self, id: u16) -> Result<bool, DbusError> {
        match self
            .call(format!("RemoveExport({id})"), "RemoveExport", &(id,))
            .await
        {
            Ok(_) => Ok(true),
            Err(DbusError::Call { source, .. }) if error_text(&source).contains("not found") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The ids of the live exports (0 is the pseudo root).
    pub async fn export_ids(&self) -> Result<BTreeSet<u16>, DbusError> {
        let op = "ShowExports".to_string();
        let msg = self.call(op.clone(), "ShowExports", &()).await?;
        let (_, exports): ShowExports =
            msg.body().deserialize().map_err(|source| DbusError::Call {
                op,
                source: Box::new(source),
            })?;
        Ok(exports.into_iter().map(|e| e.0).collect())
    }
}

fn error_text(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, desc, _) => {
            format!("{name}: {}", desc.as_deref().unwrap_or_default())
        }
        other => other.to_string(),
    }
}
