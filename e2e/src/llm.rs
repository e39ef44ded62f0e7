//! The stand-in model provider of the scenarios: the test kit's OpenAI-compatible model server
//! ([`paddock_testkit::model::ModelServer`]) on loopback, answering as the scenarios expect.
//!
//! No language model runs on a test machine, yet budgets, costs and cancellation only happen
//! when the runtime calls one. Every answer reports a fixed usage (1,000 prompt and 200
//! completion tokens per call) so costs are predictable. For any model whose name contains
//! `slow` it answers only after ten minutes, which keeps a task `working` long enough to cancel
//! it; for `pause`, after [`PAUSE`], long enough to catch tasks running and waiting. It counts
//! the calls it got.

use std::time::Duration;

use paddock_testkit::model::{Mode, ModelServer};

/// Tokens every answer reports.
pub const PROMPT_TOKENS: u64 = 1000;
pub const COMPLETION_TOKENS: u64 = 200;
/// How long a `pause` model takes to answer.
pub const PAUSE: Duration = Duration::from_secs(8);
/// What every call is answered with, plans included.
const ANSWER: &str = "Refunds are granted within 30 days of purchase with a receipt [1].";

pub struct FakeLlm(ModelServer);

impl FakeLlm {
    pub async fn start() -> anyhow::Result<Self> {
        let server = ModelServer::start_with_delays(
            Mode::Fixed(ANSWER),
            (PROMPT_TOKENS as i64, COMPLETION_TOKENS as i64),
            &[("slow", Duration::from_secs(600)), ("pause", PAUSE)],
        )
        .await;
        Ok(Self(server))
    }

    /// The base URL to put in a ToolServer's `spec.llm.endpoint`.
    pub fn endpoint(&self) -> String {
        self.0.url.clone()
    }

    pub fn calls(&self) -> usize {
        self.0.count()
    }
}
