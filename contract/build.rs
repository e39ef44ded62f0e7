// `sqlx::migrate!` embeds the migrations at compile time but does not ask cargo to watch them: without this, a
// new or changed migration would not rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
