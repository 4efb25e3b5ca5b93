//! Writes every target's seeds to `<dir>/<target>/seed-<n>` (default dir: `corpus`), the
//! layout `cargo fuzz run <target>` reads. Existing files are kept.
//!
//!     cargo run --no-default-features --example write_seeds -- [dir]

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    for (name, _) in hush_core_fuzz::TARGETS {
        let target_dir = std::path::Path::new(&dir).join(name);
        std::fs::create_dir_all(&target_dir).expect("create corpus dir");
        let seeds = hush_core_fuzz::seeds::seeds(name);
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(target_dir.join(format!("seed-{i:03}")), seed).expect("write seed");
        }
        println!("{name}: {} seeds", seeds.len());
    }
}
