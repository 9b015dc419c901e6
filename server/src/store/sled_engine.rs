//! `Engine` for the sled `Store`.

use super::*;

/// The sled engine: every method is the inherent one of the same name.
#[async_trait::async_trait]
impl Engine for Store {
    async fn execute(&self, req: Request<'_>, mut decide: Decide<'_>) -> Result<Outcome> {
        Store::execute(self, req, |snap| decide(snap)).await
    }
    fn replay(&self, actor: &str, request_id: &str, fp: &str) -> Result<Option<Outcome>> {
        Store::replay(self, actor, request_id, fp)
    }
    async fn flush(&self) -> Result<()> {
        Store::flush(self).await
    }
    fn failure(&self) -> engine::Failure {
        Box::pin(Store::failure(self))
    }
    fn batches(&self) -> prometheus_client::metrics::histogram::Histogram {
        Store::batches(self)
    }
    async fn backup(&self, actor: &str, now: Time) -> Result<Vec<u8>> {
        Store::backup(self, actor, now).await
    }
    async fn record(&self, actor: &str, action: &str, detail: &str, now: Time) -> Result<()> {
        Store::record(self, actor, action, detail, now).await
    }
    fn hotfix(&self, incident_id: &str) -> Result<Option<Hotfix>> {
        Store::hotfix(self, incident_id)
    }
    fn mitigation(&self, incident_id: &str) -> Result<Option<Mitigation>> {
        Store::mitigation(self, incident_id)
    }
    fn hotfixes(&self) -> Result<Vec<Hotfix>> {
        Store::hotfixes(self).collect()
    }
    fn mitigations(&self) -> Result<Vec<Mitigation>> {
        Store::mitigations(self).collect()
    }
    fn timeline(&self, incident_id: &str) -> Result<Vec<StoredEvent>> {
        Store::timeline(self, incident_id)
    }
    fn gate_view(&self, since: Time) -> Result<GateView> {
        Store::gate_view(self, since)
    }
    fn author_quarter_count(&self, quarter: &str, author: &str) -> Result<u32> {
        Store::author_quarter_count(self, quarter, author)
    }
    fn quarter_counts(&self, quarter: &str) -> Result<Vec<(String, u32)>> {
        Store::quarter_counts(self, quarter)
    }
    fn overdue(&self, now: Time) -> Result<Vec<(String, String, Time)>> {
        Store::overdue(self, now)
    }
    fn overdue_unreported(&self, now: Time) -> Result<Vec<(String, String)>> {
        Store::overdue_unreported(self, now)
    }
    fn exercises(&self, n: usize) -> Result<Vec<Exercise>> {
        Store::exercises(self, n)
    }
    fn lane_exercised_since(&self, since: Time) -> Result<bool> {
        Store::lane_exercised_since(self, since)
    }
    fn postmortem_counts(&self) -> Result<(u32, u32)> {
        Store::postmortem_counts(self)
    }
    fn durable_seq(&self) -> u64 {
        Store::durable_seq(self)
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        Store::subscribe(self)
    }
    fn events_after(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        Store::events_after(self, from, limit)
    }
    fn cursor(&self, name: &str) -> Result<u64> {
        Store::cursor(self, name)
    }
    fn set_cursor(&self, name: &str, seq: u64) -> Result<()> {
        Store::set_cursor(self, name, seq)
    }
    fn intents(&self, kind: IntentKind) -> Result<Vec<(String, Vec<u8>)>> {
        Store::intents(self, kind)
    }
    fn audit_after(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        Store::audit_after(self, from, limit)
    }
    fn audit_of(&self, incident_id: &str, limit: usize) -> Result<Vec<AuditRecord>> {
        Store::audit_of(self, incident_id, limit)
    }
    fn audit_size(&self) -> u64 {
        Store::audit_size(self)
    }
    fn audit_hash(&self, seq: u64) -> Result<Option<String>> {
        Store::audit_hash(self, seq)
    }
    fn verify_audit(&self) -> chain::Report {
        Store::verify_audit(self)
    }
    fn verify_checkpoints(
        &self,
        key: Option<&hotfix_api::audit::VerifierKey>,
    ) -> Result<Option<(u64, String)>> {
        Store::verify_checkpoints(self, key)
    }
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        Store::latest_checkpoint(self)
    }
}
