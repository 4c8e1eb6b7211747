//! The flags every job and fleet subcommand takes to reach a server.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use rustci_control::clients::client::{self, Clients};

#[derive(Debug, Args)]
pub struct Conn {
    /// Server address: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, env = "RUSTCI_SERVER", default_value = "http://127.0.0.1:7411")]
    pub server: String,
    /// Tenant API key (sent as `authorization: Bearer`); not needed in local mode.
    #[arg(long, env = "RUSTCI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// CA certificate (PEM) that signed the server's certificate, for https://.
    #[arg(long, env = "RUSTCI_CA")]
    pub ca: Option<PathBuf>,
}

impl Conn {
    pub async fn connect(&self) -> Result<Clients> {
        client::connect(&self.server, self.api_key.as_deref(), self.ca.as_deref()).await
    }
}
