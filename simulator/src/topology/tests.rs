use super::*;
use hush_core::rng::rng_from_seed;

fn check_regular(n: usize, d: usize, edges: &[(usize, usize)]) {
    assert_eq!(edges.len(), n * d / 2);
    let mut degree = vec![0usize; n];
    let mut seen = BTreeSet::new();
    for &(a, b) in edges {
        assert!(a < b, "edge ({a},{b}) not normalised / self-loop");
        assert!(b < n);
        assert!(seen.insert((a, b)), "multi-edge ({a},{b})");
        degree[a] += 1;
        degree[b] += 1;
    }
    assert!(degree.iter().all(|&x| x == d), "degrees {degree:?}");
    let mut sorted = edges.to_vec();
    sorted.sort();
    assert_eq!(sorted, edges);
}

#[test]
fn regular_graphs_have_the_right_shape() {
    for (n, d) in [
        (50, 4),
        (8, 2),
        (10, 9),
        (7, 4),
        (1000, 8),
        (4, 3),
        (2, 1),
        (0, 0),
    ] {
        for seed in 0..5u8 {
            let edges = random_regular(n, d, &mut rng_from_seed([seed; 32])).unwrap();
            check_regular(n, d, &edges);
        }
    }
}

#[test]
fn deterministic_per_seed_and_varies_across_seeds() {
    let a = random_regular(50, 4, &mut rng_from_seed([1; 32])).unwrap();
    let b = random_regular(50, 4, &mut rng_from_seed([1; 32])).unwrap();
    let c = random_regular(50, 4, &mut rng_from_seed([2; 32])).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn impossible_parameters_are_errors() {
    let rng = &mut rng_from_seed([0; 32]);
    assert_eq!(
        random_regular(5, 3, rng),
        Err(TopologyError::OddDegreeSum {
            nodes: 5,
            degree: 3
        })
    );
    assert_eq!(
        random_regular(4, 4, rng),
        Err(TopologyError::DegreeTooLarge {
            nodes: 4,
            degree: 4
        })
    );
    assert_eq!(
        random_regular(1, 2, rng),
        Err(TopologyError::DegreeTooLarge {
            nodes: 1,
            degree: 2
        })
    );
}

#[test]
fn graphs_are_connected_even_at_degree_two() {
    // A random 2-regular graph is usually several cycles; we must return one cycle.
    for seed in 0..20u64 {
        let mut rng = rng_from_seed(hush_core::rng::seed_from_u64(seed));
        let edges = random_regular(12, 2, &mut rng).unwrap();
        assert!(is_connected(12, &edges), "seed {seed}");
    }
    assert!(!is_connected(4, &[(0, 1), (2, 3)]));
    assert!(is_connected(1, &[]));
    // n = 4, d = 1 is a perfect matching and d = 0 isolates: never connected.
    let mut rng = rng_from_seed(hush_core::rng::seed_from_u64(1));
    assert!(matches!(
        random_regular(4, 1, &mut rng),
        Err(TopologyError::CannotBeConnected { .. })
    ));
    assert!(matches!(
        random_regular(5, 0, &mut rng),
        Err(TopologyError::CannotBeConnected { .. })
    ));
}

#[test]
fn erdos_renyi_is_connected_simple_and_deterministic() {
    use rand::SeedableRng;
    let mut r1 = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let mut r2 = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let a = erdos_renyi(60, 0.1, &mut r1).unwrap();
    assert_eq!(a, erdos_renyi(60, 0.1, &mut r2).unwrap());
    assert!(is_connected(60, &a));
    assert!(a.iter().all(|&(x, y)| x < y && y < 60));
    assert!(a.windows(2).all(|w| w[0] < w[1]));
    // ~ p × n(n−1)/2 = 177 edges.
    assert!((100..260).contains(&a.len()), "{}", a.len());
    assert!(matches!(
        erdos_renyi(50, 0.0, &mut r1),
        Err(TopologyError::NeverConnected { .. })
    ));
}

#[test]
fn barabasi_albert_has_the_right_edge_count_and_hubs() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let (n, m) = (300, 2);
    let e = barabasi_albert(n, m, &mut rng).unwrap();
    // Clique of m+1 = 3 nodes (3 edges), then m edges for each of the other n − 3 nodes.
    assert_eq!(e.len(), 3 + m * (n - 3));
    assert!(is_connected(n, &e));
    let mut deg = vec![0usize; n];
    for &(a, b) in &e {
        deg[a] += 1;
        deg[b] += 1;
    }
    assert!(deg.iter().all(|&d| d >= m));
    // Preferential attachment makes hubs far above the mean degree of ~4.
    assert!(*deg.iter().max().unwrap() > 15, "{:?}", deg.iter().max());
    assert!(matches!(
        barabasi_albert(3, 3, &mut rng),
        Err(TopologyError::BadAttachment { .. })
    ));
}

#[test]
fn explicit_edges_are_normalised_and_checked() {
    assert_eq!(
        explicit(4, &[[2, 1], [0, 3], [1, 2]]).unwrap(),
        vec![(0, 3), (1, 2)]
    );
    assert_eq!(explicit(4, &[[1, 1]]), Err(TopologyError::SelfLoop(1)));
    assert_eq!(
        explicit(4, &[[1, 4]]),
        Err(TopologyError::NoSuchNode { node: 4, nodes: 4 })
    );
}
