//! The `rag` skill: search → rank (read the top documents) → answer with citations → verify every citation.
//!
//! The question is searched once (hybrid), the best five hits are read in full, and the model (or the
//! extractive fallback) answers from them; citations that are not retrieved documents get one corrective
//! retry and are then removed. Each step stores its findings as an artifact; the answer artifact carries the
//! text and its data (citations, sources, cost, models used).

use std::collections::BTreeSet;

use serde_json::json;

use super::{
    Outcome,
    engine::{Generated, Hit, Run, StepError, summary_metadata},
    prompts::{correction, rag_prompt},
};
use crate::a2a::{budget, extractive, llm::ChatMessage};

impl Run {
    pub(super) async fn rag(&mut self) -> Result<Outcome, StepError> {
        let q = self.t.question.clone();
        self.progress("search", format!("Searching the documents for: {q}"))
            .await?;
        let found = self.step("search", || self.search(&q, 8)).await?;
        self.artifact(
            "search-results",
            "Search results",
            "Documents matching the question",
            Self::hits_artifact(&found),
            json!({ "step": "search" }),
        )
        .await?;
        let retrieved: BTreeSet<String> = found.hits.iter().map(|h| h.id.clone()).collect();

        let top: Vec<Hit> = found.hits.iter().take(5).cloned().collect();
        self.progress(
            "rank",
            format!(
                "Reading the top {} of {} documents",
                top.len(),
                found.hits.len()
            ),
        )
        .await?;
        let sources = self.step("rank", || self.read(&top)).await?;
        self.artifact(
            "sources",
            "Sources",
            "The documents the answer is written from, best first",
            json!([{ "data": { "sources": sources.iter().map(|s| json!({ "id": s.id, "title": s.title })).collect::<Vec<_>>() } }]),
            json!({ "step": "rank" }),
        )
        .await?;

        self.progress(
            "answer",
            format!("Writing the answer ({})", self.t.model.name()),
        )
        .await?;
        let answer = if sources.is_empty() {
            Generated {
                text: extractive::answer(&q, &sources),
                degraded: None,
            }
        } else {
            let prompt = rag_prompt(&q, &sources);
            let (q2, s2) = (q.clone(), sources.clone());
            self.generate(prompt, move || extractive::answer(&q2, &s2))
                .await?
        };

        self.progress(
            "verify",
            "Checking that every citation is a retrieved document",
        )
        .await?;
        let (q3, s3) = (q.clone(), sources.clone());
        let (q4, s4) = (q.clone(), sources.clone());
        let (text, v, removed, degraded) = self
            .verify(
                answer,
                &retrieved,
                move |v| {
                    let mut p = rag_prompt(&q3, &s3);
                    p.push(ChatMessage::user(correction(v)));
                    Some(p)
                },
                move || extractive::answer(&q4, &s4),
            )
            .await?;
        let data = self.result_data(&sources, &retrieved, &v, &removed, degraded.as_ref());
        self.artifact(
            "answer",
            "Answer",
            "The answer with citations",
            json!([{ "text": text }, { "data": data.clone() }]),
            json!({ "step": "answer" }),
        )
        .await?;
        Ok(Outcome::Completed {
            text: format!(
                "Answered with {} citation(s), all verified. Cost: {} {}.",
                v.cited.len(),
                budget::money(self.cost),
                self.t.currency
            ),
            metadata: summary_metadata(&data),
        })
    }
}
