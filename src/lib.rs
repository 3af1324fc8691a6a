//! intercom-mcp-gateway: a multi-tenant REST gateway in front of Intercom's MCP server.
//!
//! Data flows one way: request → auth → tenant → limits → session pool → upstream MCP →
//! meter → response. See README.md for the architecture.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod fake_intercom;
pub mod http;
pub mod limits;
pub mod mcp;
pub mod metering;
pub mod oauth;
pub mod telemetry;
pub mod tenants;

pub use app::Application;
