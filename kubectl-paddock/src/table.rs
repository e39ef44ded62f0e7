//! Output as kubectl prints it: columns padded to their widest cell, headers in capitals; and
//! the same rows as CSV for spreadsheets.

use std::io::{self, Write};

/// Writes `rows` under `headers`, each column as wide as its widest cell, separated by three
/// spaces as `kubectl get` does. An empty table prints `empty` instead, as kubectl's "No
/// resources found" does.
pub fn write(
    out: &mut impl Write,
    headers: &[&str],
    rows: &[Vec<String>],
    empty: &str,
) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "{empty}");
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(cell);
            if i < last {
                s.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 3));
            }
        }
        s
    };
    writeln!(out, "{}", line(headers.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Writes `rows` as RFC 4180 CSV under `headers`.
pub fn write_csv(out: &mut impl Write, headers: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    writeln!(
        out,
        "{}",
        headers
            .iter()
            .map(|h| field(h))
            .collect::<Vec<_>>()
            .join(",")
    )?;
    for row in rows {
        writeln!(
            out,
            "{}",
            row.iter().map(|c| field(c)).collect::<Vec<_>>().join(",")
        )?;
    }
    Ok(())
}

/// A cell for an absent value, as kubectl shows one.
pub fn or_none(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string())
        .unwrap_or_else(|| "<none>".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_under_their_headers() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["acme".to_owned(), "True".to_owned()],
            vec!["globex-corp".to_owned(), "False".to_owned()],
        ];
        write(&mut out, &["TENANT", "READY"], &rows, "none").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "TENANT        READY\nacme          True\nglobex-corp   False\n"
        );
        let mut out = Vec::new();
        write(&mut out, &["TENANT"], &[], "No tenants.").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "No tenants.\n");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut out = Vec::new();
        let rows = vec![vec![
            "a,b".to_owned(),
            "say \"hi\"".to_owned(),
            "plain".to_owned(),
        ]];
        write_csv(&mut out, &["x", "y", "z"], &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "x,y,z\n\"a,b\",\"say \"\"hi\"\"\",plain\n"
        );
    }
}
