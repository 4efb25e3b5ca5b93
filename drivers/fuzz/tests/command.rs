//! Stable fallback of the libFuzzer run: the command target over its seeds and
//! `HUSH_FUZZ_RANDOM_INPUTS` (default 2,000) lines from a seeded RNG — random bytes, random
//! printable text, and seeds with bytes replaced or cut off.

use rand::{Rng, SeedableRng};

#[test]
fn command_parser_survives_seeds_and_random_lines() {
    let n: usize = std::env::var("HUSH_FUZZ_RANDOM_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let seeds = hush_drivers_fuzz::seeds();
    for s in &seeds {
        hush_drivers_fuzz::command(s);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for _ in 0..n {
        let mut data = match rng.gen_range(0..3) {
            0 => (0..rng.gen_range(0..120))
                .map(|_| rng.gen())
                .collect::<Vec<u8>>(),
            1 => (0..rng.gen_range(0..120))
                .map(|_| rng.gen_range(b' '..=b'~'))
                .collect(),
            _ => seeds[rng.gen_range(0..seeds.len())].clone(),
        };
        if !data.is_empty() && rng.gen_bool(0.5) {
            let i = rng.gen_range(0..data.len());
            data[i] = rng.gen();
            data.truncate(rng.gen_range(0..=data.len()));
        }
        hush_drivers_fuzz::command(&data);
    }
}
