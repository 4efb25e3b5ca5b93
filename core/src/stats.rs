//! Counters for `/stats`, and the debug log of dropped input.
//!
//! Contract:
//! - Every layer keeps monotonic counters in its own `Stats` struct and lists all of them with
//!   a `counters()` method as [`Counters`]: `(name, value)` pairs, names in snake_case (the
//!   reason of a drop, or the event counted). A map-valued counter is listed as `field.key`, a
//!   nested struct as `field.name`. [`crate::node::Node::counters`] joins every layer's listing
//!   as `layer.name` (layers: `p2p`, `whisper`, `security`, `mvds`, `chat`, `node`).
//! - Every input a layer drops is counted there by reason, and logged with [`log_drop!`] at
//!   debug level under the target [`DROP_LOG_TARGET`], with the layer, the reason and the id
//!   of what was dropped (message id, envelope hash, connection id); e.g.
//!   `RUST_LOG=hush::drop=debug hush node ...`. `tracing` is a facade (as in quinn-proto's
//!   sans-IO core): core writes nothing itself; the arguments are evaluated only when a
//!   subscriber enables the target.

use std::fmt;

/// A layer's counters as `(name, value)` pairs, in a fixed order.
pub type Counters = Vec<(String, u64)>;

/// `tracing` target of [`log_drop!`].
pub const DROP_LOG_TARGET: &str = "hush::drop";

/// [`Counters`] from fixed names.
pub(crate) fn list<const N: usize>(pairs: [(&'static str, u64); N]) -> Counters {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// Appends `counters` under `prefix.` (a nested struct or a map field).
pub(crate) fn extend_prefixed(out: &mut Counters, prefix: &str, counters: Counters) {
    out.extend(
        counters
            .into_iter()
            .map(|(name, value)| (format!("{prefix}.{name}"), value)),
    );
}

/// Lower-case hex of an id, for [`log_drop!`] (formatted only when the log is enabled).
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Logs one dropped input at debug level: `log_drop!(layer, reason, id)`, where `id`
/// implements `Display` (use [`Hex`] for byte ids). See the module docs.
#[macro_export]
macro_rules! log_drop {
    ($layer:expr, $reason:expr, $id:expr) => {
        ::tracing::debug!(
            target: $crate::stats::DROP_LOG_TARGET,
            layer = $layer,
            reason = $reason,
            id = %$id,
            "dropped"
        )
    };
}

/// Test support: the top-level field names of a `#[derive(Debug)]` struct's output whose value
/// is not an empty map, so a test can check that `counters()` lists every field (a field added
/// to a `Stats` struct but not to its listing fails that test).
#[cfg(test)]
pub(crate) fn debug_field_names(debug: &str) -> Vec<String> {
    let Some(body) = debug
        .find('{')
        .and_then(|start| debug.get(start + 1..debug.len().saturating_sub(1)))
    else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut depth = 0i32;
    let mut field = String::new();
    for part in body.split_inclusive([',', '{', '}', '[', ']', '(', ')']) {
        field.push_str(part);
        match part.chars().last() {
            Some('{' | '[' | '(') => depth += 1,
            Some('}' | ']' | ')') => depth -= 1,
            Some(',') if depth == 0 => {
                push_field(&mut names, &field);
                field.clear();
            }
            _ => {}
        }
    }
    push_field(&mut names, &field);
    names
}

#[cfg(test)]
fn push_field(names: &mut Vec<String>, field: &str) {
    if let Some((name, value)) = field.split_once(':') {
        let value = value.trim().trim_end_matches(',').trim();
        if value != "{}" {
            names.push(name.trim().to_owned());
        }
    }
}

/// Test support: every non-empty field of `debug` (a `Stats` struct's `{:?}`) is listed in
/// `counters`, by its name or as a `name.` prefix, possibly under a `layer.` prefix.
#[cfg(test)]
pub(crate) fn assert_lists_every_field(debug: &str, counters: &Counters) {
    let fields = debug_field_names(debug);
    assert!(!fields.is_empty(), "no fields in {debug}");
    for field in fields {
        let listed = |name: &str| {
            let segments: Vec<&str> = name.split('.').collect();
            segments.first() == Some(&field.as_str()) || segments.get(1) == Some(&field.as_str())
        };
        assert!(
            counters.iter().any(|(n, _)| listed(n)),
            "field {field} is not listed by counters(): {counters:?}"
        );
    }
}

/// Test support: runs `f` with a subscriber that records every [`log_drop!`] event on this
/// thread, and returns them as `(layer, reason, id)`.
#[cfg(test)]
pub(crate) fn capture_drops<T>(f: impl FnOnce() -> T) -> (T, Vec<(String, String, String)>) {
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    #[derive(Default)]
    struct Fields {
        layer: String,
        reason: String,
        id: String,
    }

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.record_debug(field, &value);
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            let text = format!("{value:?}").trim_matches('"').to_owned();
            match field.name() {
                "layer" => self.layer = text,
                "reason" => self.reason = text,
                "id" => self.id = text,
                _ => {}
            }
        }
    }

    struct Capture(Arc<Mutex<Vec<(String, String, String)>>>);

    impl Subscriber for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.target() == DROP_LOG_TARGET
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields::default();
            event.record(&mut fields);
            if let Ok(mut events) = self.0.lock() {
                events.push((fields.layer, fields.reason, fields.id));
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    let events = Arc::new(Mutex::new(Vec::new()));
    let dispatch = tracing::Dispatch::new(Capture(Arc::clone(&events)));
    let out = tracing::dispatcher::with_default(&dispatch, f);
    let events = events.lock().map(|e| e.clone()).unwrap_or_default();
    (out, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Inner {
        x: u64,
    }

    #[derive(Debug, Default)]
    struct Sample {
        a: u64,
        map: std::collections::BTreeMap<&'static str, u64>,
        full: std::collections::BTreeMap<&'static str, u64>,
        inner: Inner,
        b: u64,
    }

    #[test]
    fn debug_field_names_skips_empty_maps_and_nesting() {
        let mut s = Sample::default();
        s.full.insert("k", 1);
        s.inner.x = 2;
        assert_eq!(s.a + s.b + s.inner.x + s.map.len() as u64, 2);
        let names = debug_field_names(&format!("{s:?}"));
        assert_eq!(names, ["a", "full", "inner", "b"]);
        let listed = list([("a", 0), ("inner.x", 2), ("b", 0)]);
        let missing = std::panic::catch_unwind(|| {
            assert_lists_every_field(&format!("{s:?}"), &listed);
        });
        assert!(missing.is_err(), "`full` is not listed");
        let mut all = listed.clone();
        extend_prefixed(&mut all, "full", list([("k", 1)]));
        assert_lists_every_field(&format!("{s:?}"), &all);
        assert_eq!(all.last(), Some(&("full.k".to_owned(), 1)));
    }

    #[test]
    fn log_drop_is_captured_with_its_fields() {
        let ((), events) = capture_drops(|| {
            crate::log_drop!("mvds", "store_full", Hex(&[0xab, 0x01]));
        });
        assert_eq!(
            events,
            [(
                "mvds".to_owned(),
                "store_full".to_owned(),
                "ab01".to_owned()
            )]
        );
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(Hex(&[0x0a, 0xff]).to_string(), "0aff");
    }
}
