//! The `research` skill: plan sub-queries → search each → read → synthesize a Markdown report with sources →
//! verify.
//!
//! The model (or the extractive planner) splits the question into up to three sub-queries; each is searched,
//! the top three hits of each are read (at most eight documents), and the report is written from them, one
//! section per sub-query. Citations are verified as in `rag`, and a model report gets its list of sources built
//! from the verified citations.

use std::collections::BTreeSet;

use serde_json::json;

use super::{
    Outcome,
    engine::{Generated, Hit, Run, StepError, summary_metadata},
    prompts::{correction, plan_prompt, report_prompt},
};
use crate::a2a::{
    budget,
    extractive::{self, Section, Source},
    llm::{ChatMessage, EXTRACTIVE},
};

impl Run {
    pub(super) async fn research(&mut self) -> Result<Outcome, StepError> {
        let q = self.t.question.clone();
        self.progress("plan", "Planning sub-queries").await?;
        let plan = if self.remote() {
            let q2 = q.clone();
            let g = self
                .generate(plan_prompt(&q), move || {
                    serde_json::to_string(&extractive::plan(&q2, 3)).unwrap_or_default()
                })
                .await?;
            parse_plan(&g.text).unwrap_or_else(|| extractive::plan(&q, 3))
        } else {
            extractive::plan(&q, 3)
        };
        self.artifact(
            "plan",
            "Research plan",
            "The sub-queries searched",
            json!([{ "data": { "question": q, "subQueries": plan } }]),
            json!({ "step": "plan" }),
        )
        .await?;

        let mut retrieved = BTreeSet::new();
        let mut per_query: Vec<(String, Vec<Hit>)> = Vec::new();
        for (i, sq) in plan.iter().enumerate() {
            self.progress(
                "search",
                format!("Searching ({}/{}): {sq}", i + 1, plan.len()),
            )
            .await?;
            let found = self.step("search", || self.search(sq, 5)).await?;
            retrieved.extend(found.hits.iter().map(|h| h.id.clone()));
            self.artifact(
                &format!("search-{}", i + 1),
                &format!("Search results {}", i + 1),
                &format!("Documents matching: {sq}"),
                Self::hits_artifact(&found),
                json!({ "step": "search" }),
            )
            .await?;
            per_query.push((sq.clone(), found.hits));
        }

        // Read each document once: the top three of every sub-query, at most eight in all.
        let mut to_read: Vec<Hit> = Vec::new();
        for (_, hits) in &per_query {
            for h in hits.iter().take(3) {
                if to_read.len() < 8 && !to_read.iter().any(|r| r.id == h.id) {
                    to_read.push(h.clone());
                }
            }
        }
        self.progress("read", format!("Reading {} documents", to_read.len()))
            .await?;
        let sources = self.step("read", || self.read(&to_read)).await?;
        self.artifact(
            "sources",
            "Sources",
            "The documents the report is written from",
            json!([{ "data": { "sources": sources.iter().map(|s| json!({ "id": s.id, "title": s.title })).collect::<Vec<_>>() } }]),
            json!({ "step": "read" }),
        )
        .await?;

        let sections: Vec<(String, Vec<Source>)> = per_query
            .iter()
            .map(|(sq, hits)| {
                let srcs = hits
                    .iter()
                    .filter_map(|h| sources.iter().find(|s| s.id == h.id).cloned())
                    .collect();
                (sq.clone(), srcs)
            })
            .collect();
        let extractive_report = {
            let (q, sections) = (q.clone(), sections.clone());
            move || {
                let secs: Vec<Section<'_>> = sections
                    .iter()
                    .map(|(sq, s)| Section {
                        query: sq,
                        sources: s,
                    })
                    .collect();
                extractive::report(&q, &secs)
            }
        };
        self.progress(
            "synthesize",
            format!("Writing the report ({})", self.t.model.name()),
        )
        .await?;
        let report = if sources.is_empty() || !self.remote() {
            // Nothing for a model to work from, or no model: the extractive report.
            self.models_used.insert(EXTRACTIVE.into());
            Generated {
                text: extractive_report.clone()(),
                degraded: self.degraded.clone(),
            }
        } else {
            self.generate(report_prompt(&q, &sections), extractive_report.clone())
                .await?
        };

        self.progress(
            "verify",
            "Checking that every citation is a retrieved document",
        )
        .await?;
        let (q3, sections3) = (q.clone(), sections.clone());
        let (text, v, removed, degraded) = self
            .verify(
                report,
                &retrieved,
                move |v| {
                    let mut p = report_prompt(&q3, &sections3);
                    p.push(ChatMessage::user(correction(v)));
                    Some(p)
                },
                extractive_report,
            )
            .await?;
        // Extractive reports carry their own source list; model reports get one built from the verified citations.
        let text = if text.contains("\n## Sources") {
            text
        } else {
            let cited: Vec<(&str, &str)> = v
                .cited
                .iter()
                .map(|id| {
                    (
                        id.as_str(),
                        sources
                            .iter()
                            .find(|s| &s.id == id)
                            .map(|s| s.title.as_str())
                            .unwrap_or(""),
                    )
                })
                .collect();
            format!(
                "{}\n{}",
                text.trim_end(),
                extractive::sources_section(&cited)
            )
        };
        let data = self.result_data(&sources, &retrieved, &v, &removed, degraded.as_ref());
        self.artifact(
            "report",
            "Research report",
            "The report in Markdown, with cited sources",
            json!([{ "text": text, "mediaType": "text/markdown" }, { "data": data.clone() }]),
            json!({ "step": "synthesize" }),
        )
        .await?;
        Ok(Outcome::Completed {
            text: format!(
                "Report written from {} source(s) with {} verified citation(s). Cost: {} {}.",
                sources.len(),
                v.cited.len(),
                budget::money(self.cost),
                self.t.currency
            ),
            metadata: summary_metadata(&data),
        })
    }
}

/// Reads the model's plan: a JSON array of 1..=3 non-empty strings, possibly wrapped in prose or a code fence.
pub fn parse_plan(text: &str) -> Option<Vec<String>> {
    let start = text.find('[')?;
    let end = text.rfind(']')?;
    let list: Vec<String> = serde_json::from_str(text.get(start..=end)?).ok()?;
    let list: Vec<String> = list
        .into_iter()
        .map(|s| s.trim().chars().take(500).collect::<String>())
        .filter(|s| !s.is_empty())
        .take(3)
        .collect();
    (!list.is_empty()).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_read_from_prose_or_fences() {
        assert_eq!(
            parse_plan("```json\n[\"a\", \"b\"]\n```"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse_plan("Here: [\"a\",\"b\",\"c\",\"d\"]").map(|v| v.len()),
            Some(3)
        );
        assert_eq!(parse_plan("no plan"), None);
        assert_eq!(parse_plan("[1, 2]"), None);
        assert_eq!(parse_plan("[\"\"]"), None);
    }
}
