//! The prompts the skills send the model: the question with the sources as numbered blocks, the research
//! planner, the report writer, and the correction asked for when citations do not resolve.
//!
//! Sources appear as `[id] title` followed by their text, so the model cites the exact ids the verifier
//! checks against.

use std::collections::BTreeSet;

use crate::a2a::{
    extractive::{Source, Verification},
    llm::ChatMessage,
};

/// The sources as the model reads them.
fn sources_block(sources: &[Source]) -> String {
    let mut s = String::new();
    for src in sources {
        s.push_str(&format!("[{}] {}\n{}\n\n", src.id, src.title, src.content));
    }
    s
}

pub(super) fn rag_prompt(q: &str, sources: &[Source]) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(
            "You answer questions using only the provided sources. After each sentence that uses a source, cite it \
             as [id] with the source's exact id. If the sources do not answer the question, say so. Be concise.",
        ),
        ChatMessage::user(format!(
            "Question: {q}\n\nSources:\n\n{}",
            sources_block(sources)
        )),
    ]
}

pub(super) fn plan_prompt(q: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(
            "You plan research over a document collection. Reply with only a JSON array of 1 to 3 short search \
             queries that together cover the question.",
        ),
        ChatMessage::user(format!("Question: {q}")),
    ]
}

pub(super) fn report_prompt(q: &str, sections: &[(String, Vec<Source>)]) -> Vec<ChatMessage> {
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    for (_, srcs) in sections {
        for s in srcs {
            if seen.insert(s.id.clone()) {
                all.push(s.clone());
            }
        }
    }
    let subs: Vec<&str> = sections.iter().map(|(q, _)| q.as_str()).collect();
    vec![
        ChatMessage::system(
            "You write a research report in Markdown using only the provided sources. Organise it under headings, \
             cite every claim as [id] with the source's exact id, and do not add a list of sources at the end; it \
             is added for you.",
        ),
        ChatMessage::user(format!(
            "Question: {q}\nSub-questions: {}\n\nSources:\n\n{}",
            subs.join("; "),
            sources_block(&all)
        )),
    ]
}

pub(super) fn correction(v: &Verification) -> String {
    format!(
        "These citations are not ids of the provided sources: {}. Answer again, citing only the ids shown in \
         brackets before each source.",
        v.unknown.join(", ")
    )
}
