use super::*;
use hush_core::node::ChatMessage;

fn msg(id: u8) -> ChatMessage {
    ChatMessage {
        chat: "c".into(),
        from: [4; 65],
        text: "t".into(),
        clock: 1,
        timestamp_ms: 0,
        message_id: [id; 32],
    }
}

#[test]
fn nearest_rank_percentiles_on_known_data() {
    assert_eq!(percentile_nearest_rank(&[], 50), None);
    assert_eq!(percentile_nearest_rank(&[7], 0), Some(7));
    assert_eq!(percentile_nearest_rank(&[7], 99), Some(7));
    // The classic example: 15, 20, 35, 40, 50.
    let v = [15, 20, 35, 40, 50];
    assert_eq!(percentile_nearest_rank(&v, 5), Some(15));
    assert_eq!(percentile_nearest_rank(&v, 30), Some(20));
    assert_eq!(percentile_nearest_rank(&v, 40), Some(20));
    assert_eq!(percentile_nearest_rank(&v, 50), Some(35));
    assert_eq!(percentile_nearest_rank(&v, 100), Some(50));
    assert_eq!(percentile_nearest_rank(&v, 250), Some(50));
    let hundred: Vec<u64> = (1..=100).collect();
    assert_eq!(percentile_nearest_rank(&hundred, 50), Some(50));
    assert_eq!(percentile_nearest_rank(&hundred, 99), Some(99));
    let ten: Vec<u64> = (1..=10).collect();
    assert_eq!(percentile_nearest_rank(&ten, 99), Some(10));
    assert_eq!(percentile_nearest_rank(&ten, 50), Some(5));
}

#[test]
fn deliveries_duplicates_and_latency() {
    let mut m = Metrics::new(3);
    m.on_event(Time(1_000), 0, &Event::MessageSent(msg(1)));
    m.on_event(Time(1_250), 1, &Event::MessageReceived(msg(1)));
    m.on_event(Time(1_400), 2, &Event::MessageReceived(msg(1)));
    m.on_event(Time(1_500), 2, &Event::MessageReceived(msg(1))); // duplicate
    m.on_event(Time(1_600), 0, &Event::MessageReceived(msg(1))); // at the author
    m.on_event(Time(1_700), 1, &Event::MessageReceived(msg(9))); // never sent
    assert_eq!(m.messages_sent, 1);
    assert_eq!(m.deliveries, 2);
    assert_eq!(m.duplicate_deliveries, 1);
    assert_eq!(m.self_deliveries, 1);
    assert_eq!(m.unknown_deliveries, 1);
    assert_eq!(m.sorted_latencies_ms(), vec![250, 400]);
}

#[test]
fn traffic_counters() {
    let mut m = Metrics::new(2);
    m.on_send(0, 10);
    m.on_send(1, 5);
    m.on_send(7, 1); // out of range: counted in the total only
    m.on_receive(1, 10);
    assert_eq!(m.bytes_sent_total, 16);
    assert_eq!(
        m.per_node[0],
        NodeTraffic {
            bytes_up: 10,
            bytes_down: 0
        }
    );
    assert_eq!(
        m.per_node[1],
        NodeTraffic {
            bytes_up: 5,
            bytes_down: 10
        }
    );
}
