//! The offline `extractive` provider and the citation checks every answer goes through.
//!
//! Extractive answers are built from the retrieved passages themselves: the sentences that share the most
//! terms with the question, each followed by the `[id]` of the document it came from. No model, no cost, and
//! every citation is a retrieved document by construction. The same citation parser checks model answers.

use std::collections::{BTreeSet, HashSet};

/// A retrieved document the answer may cite.
#[derive(Debug, Clone)]
pub struct Source {
    pub id: String,
    pub title: String,
    pub content: String,
}

const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
    "how", "i", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "should", "than",
    "that", "the", "their", "there", "these", "this", "to", "was", "what", "when", "where",
    "which", "who", "why", "will", "with", "you", "your", "we", "our", "they", "them", "has",
    "have", "had", "not", "any", "all", "also", "been", "being", "did", "if", "may", "must", "so",
    "such", "tell", "explain", "describe", "give", "list", "please",
];

/// Lowercased content words of `text`.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let end_here = match c {
            '\n' => true,
            '.' | '!' | '?' => bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace()),
            _ => false,
        };
        if end_here {
            let s = text[start..=i].trim();
            if s.chars().count() >= 3 {
                out.push(s);
            }
            start = i + c.len_utf8();
        }
    }
    let rest = text[start..].trim();
    if rest.chars().count() >= 3 {
        out.push(rest);
    }
    out
}

/// The best `max` sentences for `question` across `sources` (at most two per source), each with its source id.
pub fn best_sentences<'a>(
    question: &str,
    sources: &'a [Source],
    max: usize,
) -> Vec<(&'a str, &'a str)> {
    let q: HashSet<String> = terms(question).into_iter().collect();
    let mut scored: Vec<(f64, usize, usize, &str, &str)> = Vec::new();
    for (rank, s) in sources.iter().enumerate() {
        for (pos, sent) in sentences(&s.content).into_iter().enumerate() {
            if sent.chars().count() > 600 {
                continue;
            }
            let st: HashSet<String> = terms(sent).into_iter().collect();
            let overlap = q.intersection(&st).count();
            if overlap == 0 {
                continue;
            }
            // Shared terms first; then better-ranked sources and earlier sentences.
            let score = overlap as f64 - 0.05 * rank as f64 - 0.01 * pos as f64;
            scored.push((score, rank, pos, sent, s.id.as_str()));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut per_source: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut seen = HashSet::new();
    let mut picked = Vec::new();
    for (_, _, _, sent, id) in scored {
        let n = per_source.entry(id).or_default();
        if *n >= 2 || !seen.insert(sent) {
            continue;
        }
        *n += 1;
        picked.push((sent, id));
        if picked.len() == max {
            break;
        }
    }
    if picked.is_empty() {
        // Nothing shares a term: the top source's opening still says what was found.
        if let Some(s) = sources.first()
            && let Some(first) = sentences(&s.content).into_iter().next()
        {
            picked.push((first, s.id.as_str()));
        }
    }
    picked
}

fn cite(sentence: &str, id: &str) -> String {
    let s = sentence.trim_end();
    format!("{s} [{id}]")
}

/// An answer to `question` from the passages, with citations.
pub fn answer(question: &str, sources: &[Source]) -> String {
    if sources.is_empty() {
        return format!("No documents matched the question \"{question}\".");
    }
    best_sentences(question, sources, 4)
        .into_iter()
        .map(|(s, id)| cite(s, id))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sub-queries for a research question without a model: the question itself, plus its parts when it joins
/// several topics ("A and B", "A; B", "A vs B").
pub fn plan(question: &str, max: usize) -> Vec<String> {
    let mut out = vec![question.trim().to_owned()];
    let lowered = question
        .replace(" versus ", ";")
        .replace(" vs. ", ";")
        .replace(" vs ", ";")
        .replace(" and ", ";");
    let parts: Vec<String> = lowered
        .split([';', ',', '?'])
        .map(|p| p.trim().trim_end_matches('.').to_owned())
        .filter(|p| terms(p).len() >= 2)
        .collect();
    if parts.len() > 1 {
        for p in parts {
            if out.len() >= max {
                break;
            }
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&p)) {
                out.push(p);
            }
        }
    }
    out.truncate(max.max(1));
    out
}

/// One report section: a sub-query and the sources found for it.
pub struct Section<'a> {
    pub query: &'a str,
    pub sources: &'a [Source],
}

/// A research report in Markdown, each finding cited, then the sources list.
pub fn report(question: &str, sections: &[Section<'_>]) -> String {
    let mut md = format!("# Research report: {question}\n");
    let mut cited: Vec<(&str, &str)> = Vec::new();
    for s in sections {
        md.push_str(&format!("\n## {}\n\n", s.query));
        let picked = best_sentences(s.query, s.sources, 3);
        if picked.is_empty() {
            md.push_str("No documents matched this part of the question.\n");
            continue;
        }
        for (sent, id) in picked {
            md.push_str(&format!("- {}\n", cite(sent, id)));
            if let Some(src) = s.sources.iter().find(|x| x.id == id)
                && !cited.iter().any(|(c, _)| *c == id)
            {
                cited.push((src.id.as_str(), src.title.as_str()));
            }
        }
    }
    md.push_str(&sources_section(&cited));
    md
}

/// The closing "Sources" list of a report.
pub fn sources_section(cited: &[(&str, &str)]) -> String {
    let mut md = String::from("\n## Sources\n\n");
    if cited.is_empty() {
        md.push_str("None.\n");
    }
    for (id, title) in cited {
        let title = if title.is_empty() {
            "(untitled)"
        } else {
            title
        };
        md.push_str(&format!("- [{id}] {title}\n"));
    }
    md
}

/// The `[id]` citations in `text`, in order of first appearance. Markdown links (`[text](url)`) are not
/// citations.
pub fn citations(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let inner = &after[..close];
        let next = &after[close + 1..];
        rest = next;
        if inner.contains('[') {
            // "[[x]": restart from the inner bracket.
            rest = &after[inner.rfind('[').map_or(0, |i| i)..];
            continue;
        }
        if next.starts_with('(') || inner.trim().is_empty() || inner.chars().count() > 256 {
            continue;
        }
        // "[a, b]" cites two documents.
        for id in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !out.iter().any(|o| o == id) {
                out.push(id.to_owned());
            }
        }
    }
    out
}

/// Citation check of an answer against the retrieved ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub cited: Vec<String>,
    pub unknown: Vec<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.unknown.is_empty() && !self.cited.is_empty()
    }
}

pub fn verify(text: &str, retrieved: &BTreeSet<String>) -> Verification {
    let (cited, unknown) = citations(text)
        .into_iter()
        .partition(|c| retrieved.contains(c));
    Verification { cited, unknown }
}

/// Removes citations of documents that were not retrieved, so the final answer cites only real sources.
pub fn strip_unknown(text: &str, unknown: &[String]) -> String {
    let mut out = text.to_owned();
    for u in unknown {
        out = out
            .replace(&format!(" [{u}]"), "")
            .replace(&format!("[{u}]"), "");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(id: &str, content: &str) -> Source {
        Source {
            id: id.into(),
            title: format!("T {id}"),
            content: content.into(),
        }
    }

    #[test]
    fn answers_cite_the_sentences_they_use() {
        let sources = vec![
            src(
                "gdpr-17",
                "Article 17 gives the right to erasure. Controllers must erase data without undue delay.",
            ),
            src(
                "ccpa",
                "Consumers may request deletion. Businesses have 45 days to respond.",
            ),
        ];
        let a = answer("What is the right to erasure?", &sources);
        assert!(a.contains("right to erasure. [gdpr-17]"), "{a}");
        let retrieved: BTreeSet<String> = ["gdpr-17".to_string(), "ccpa".to_string()].into();
        assert!(verify(&a, &retrieved).ok());
    }

    #[test]
    fn citations_skip_links_and_split_lists() {
        assert_eq!(
            citations("A [x]. B [y, z] and [link](http://e) [x]"),
            vec!["x", "y", "z"]
        );
        assert_eq!(citations("no brackets"), Vec::<String>::new());
        assert_eq!(citations("[[a]"), vec!["a"]);
        let retrieved: BTreeSet<String> = ["x".to_string()].into();
        let v = verify("A [x] B [made-up]", &retrieved);
        assert_eq!(v.unknown, vec!["made-up"]);
        assert!(!v.ok());
        assert_eq!(strip_unknown("A [x] B [made-up].", &v.unknown), "A [x] B.");
    }

    #[test]
    fn plans_split_compound_questions() {
        assert_eq!(plan("What is GDPR?", 3), vec!["What is GDPR?"]);
        let p = plan(
            "Compare data retention rules and breach notification deadlines",
            3,
        );
        assert_eq!(p.len(), 3);
        assert_eq!(p[1], "Compare data retention rules");
        assert_eq!(p[2], "breach notification deadlines");
    }

    #[test]
    fn empty_sources_say_so() {
        assert!(answer("x y", &[]).starts_with("No documents matched"));
        let r = report(
            "q",
            &[Section {
                query: "q",
                sources: &[],
            }],
        );
        assert!(r.contains("No documents matched") && r.contains("## Sources"));
    }
}
