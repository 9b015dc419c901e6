//! Prometheus' HTTP API: instant queries (`GET /api/v1/query`).
//!
//! Errors carry Prometheus' own `errorType` and `error` text, so a bad query
//! reads as Prometheus would say it.

use std::time::Duration;

use serde::Deserialize;

use super::{Attempt, Metrics};

#[derive(Debug, Clone)]
pub struct PrometheusSettings {
    /// Base URL, e.g. `http://prometheus:9090`.
    pub url: String,
    /// Optional bearer token (a secret: from env or file).
    pub bearer_token: Option<String>,
    pub timeout: Duration,
}

pub struct PrometheusClient {
    http: reqwest::Client,
    settings: PrometheusSettings,
    /// Counted in /metrics.
    calls: crate::metrics::Calls,
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum ApiData {
    Vector(Vec<Sample>),
    Scalar((f64, String)),
    Matrix(serde::de::IgnoredAny),
    String(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Sample {
    #[serde(default)]
    metric: serde_json::Map<String, serde_json::Value>,
    value: (f64, String),
}

impl PrometheusClient {
    /// Counts its calls in `calls` (the daemon's, which /metrics shows).
    pub fn measured(mut self, calls: crate::metrics::Calls) -> Self {
        self.calls = calls;
        self
    }

    pub fn new(settings: PrometheusSettings) -> Result<PrometheusClient, String> {
        super::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| format!("building the Prometheus HTTP client: {e}"))?;
        Ok(PrometheusClient {
            http,
            settings,
            calls: Default::default(),
        })
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .map_err(|_| format!("Prometheus returned a non-numeric value '{v}'"))
}

#[async_trait::async_trait]
impl Metrics for PrometheusClient {
    async fn instant(&self, query: &str) -> Result<f64, String> {
        self.calls
            .time("prometheus", "instant", async {
            let url = format!("{}/api/v1/query", self.settings.url.trim_end_matches('/'));
            let (status, body) = super::with_retries("querying Prometheus", || async {
                let mut req = self.http.get(&url).query(&[("query", query)]);
                if let Some(t) = &self.settings.bearer_token {
                    req = req.bearer_auth(t);
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| Attempt::Transient(format!("querying Prometheus: {e}")))?;
                let status = resp.status();
                let body = resp
                    .text()
                    .await
                    .map_err(|e| Attempt::Transient(format!("reading Prometheus' answer: {e}")))?;
                // 503: Prometheus is starting or overloaded; a 4xx carries its
                // own error for a bad query, which retrying will not fix.
                if super::transient_status(status.as_u16()) {
                    return Err(Attempt::Transient(format!(
                        "Prometheus answered {status}: {}",
                        body.trim()
                    )));
                }
                Ok((status, body))
            })
            .await?;
            let parsed: ApiResponse = serde_json::from_str(&body).map_err(|_| {
                format!(
                    "Prometheus answered {status} with a body that is not its API's JSON: {}",
                    body.trim()
                )
            })?;
            if parsed.status != "success" {
                return Err(format!(
                    "Prometheus: {}: {}",
                    parsed.error_type.unwrap_or_default(),
                    parsed.error.unwrap_or_default()
                ));
            }
            match parsed.data {
                Some(ApiData::Scalar((_, v))) => parse_value(&v),
                Some(ApiData::Vector(samples)) => match samples.as_slice() {
                    [] => Err("the query returned no series (no data for this app?)".into()),
                    [one] => parse_value(&one.value.1),
                    many => Err(format!(
                        "the query returned {} series; it must aggregate to one (e.g. sum(...)): first {:?}",
                        many.len(),
                        many[0].metric
                    )),
                },
                Some(ApiData::Matrix(_)) | Some(ApiData::String(_)) | None => {
                    Err("the query must return an instant vector or a scalar".into())
                }
            }
            })
            .await
    }
}
