//! `paddock-operator`: reconciles Paddock's CRDs. Controllers arrive with the operator issue.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("paddock-operator: controllers are not built yet");
    std::process::exit(2);
}
