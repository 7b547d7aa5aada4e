//! The fuzz target of the event log's records (docs/DECISIONS.md "Fuzzing"): what the router's
//! recovery and the projector do with each record of `callgrid.events.v1`. Run by libFuzzer
//! (`fuzz/fuzz_targets/envelope.rs`, `scripts/fuzz.sh envelope`) and smoked by the test below.

use std::sync::Arc;

use callgrid_domain::setup::Defaults;
use callgrid_domain::{TenantCore, TenantId, TenantSetup};
use callgrid_proto::events::v1 as pb;
use prost::Message;

/// Records: the whole input as one record value, then the input as a sequence of
/// length-delimited record values (protobuf's own framing), folded in order into one tenant
/// as recovery folds them. Every envelope that decodes re-encodes to itself; every domain
/// event it carries converts to protobuf and back to itself.
pub fn envelope(data: &[u8]) {
    if let Ok(env) = pb::EventEnvelope::decode(data) {
        record(&env, None);
    }
    let mut core = TenantCore::new(Arc::new(empty_setup()), 1);
    let mut buf = data;
    while !buf.is_empty() {
        let Ok(env) = pb::EventEnvelope::decode_length_delimited(&mut buf) else {
            break;
        };
        record(&env, Some(&mut core));
    }
    core.rebuild_boards();
}

fn record(env: &pb::EventEnvelope, core: Option<&mut TenantCore>) {
    let bytes = env.encode_to_vec();
    let again = pb::EventEnvelope::decode(bytes.as_slice()).expect("an encoded envelope decodes");
    assert_eq!(&again, env, "an envelope re-encoded decodes differently");
    let Ok(Some(event)) = crate::envelope_event(env) else {
        return;
    };
    let back = crate::event_dom(&crate::event_pb(&event.body))
        .unwrap_or_else(|e| panic!("an event we encode does not decode: {e}"));
    assert_eq!(
        back.as_ref(),
        Some(&event.body),
        "an event round-trips differently"
    );
    let rewritten = crate::event_envelope(
        &env.tenant,
        (&env.aggregate_kind, &env.aggregate_id),
        env.sequence,
        env.plan_version,
        &env.traceparent,
        &event,
    );
    assert_eq!(
        crate::envelope_event(&rewritten).ok().flatten().as_ref(),
        Some(&event)
    );
    if let Some(core) = core {
        core.apply(&event);
    }
}

fn empty_setup() -> TenantSetup {
    TenantSetup::new(
        TenantId::new("fuzz"),
        1,
        Vec::new(),
        Defaults::default(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_smoke_envelope() {
        let r = callgrid_fuzz_smoke::run("envelope", 20_000, 16_384, super::envelope);
        assert!(r.seeds > 0);
    }
}
